"""Ten tasks, at most three at once (the threading tutorial's first example).

The standard-library version differs only in the import: `from threading import Semaphore`.
"""
import threading
import time

from futex_semaphore import Semaphore  # was: from threading import Semaphore

sem = Semaphore(3)


def task(i):
    with sem:
        print(f"performing task {i}")
        time.sleep(0.2)
        print(f"finished task {i}")


threads = [threading.Thread(target=task, args=(i,)) for i in range(10)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("all 10 tasks done")
