"""Five customers, two tellers: a pool of five threads and a bounded semaphore of two.

The standard-library version differs only in the import:
`from threading import BoundedSemaphore`.
"""
import time
from concurrent.futures import ThreadPoolExecutor

from futex_semaphore import BoundedSemaphore  # was: from threading import BoundedSemaphore

tellers = BoundedSemaphore(2)
opened = time.monotonic()


def customer(name, seconds):
    print(f"{time.monotonic() - opened:.2f}s {name} is waiting in line")
    with tellers:
        print(f"{time.monotonic() - opened:.2f}s {name} is being served")
        time.sleep(seconds)
        print(f"{time.monotonic() - opened:.2f}s {name} is done")


customers = [("Alice", 0.2), ("Bob", 0.1), ("Carol", 0.3), ("Dave", 0.1), ("Eve", 0.2)]
with ThreadPoolExecutor(max_workers=5) as pool:
    for name, seconds in customers:
        pool.submit(customer, name, seconds)
print("the bank is closed")
