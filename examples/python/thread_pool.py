"""A thread pool of ten workers whose jobs run at most three at once.

The standard-library version differs only in the import: `from threading import Semaphore`.
"""
import time
from concurrent.futures import ThreadPoolExecutor

from futex_semaphore import Semaphore  # was: from threading import Semaphore

slots = Semaphore(3)


def job(i):
    with slots:
        print(f"job {i} started")
        time.sleep(0.1)
        print(f"job {i} finished")
    return i * i


with ThreadPoolExecutor(max_workers=10) as pool:
    results = list(pool.map(job, range(12)))
print("results", results)
