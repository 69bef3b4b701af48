"""Five threads, two permits, one second of patience: `acquire(timeout=1)`.

The standard-library version differs only in the import: `from threading import Semaphore`.
"""
import threading
import time

from futex_semaphore import Semaphore  # was: from threading import Semaphore

sem = Semaphore(2)
start = time.monotonic()


def worker(i):
    if sem.acquire(timeout=1):
        try:
            print(f"{time.monotonic() - start:.2f}s thread {i} acquired")
            time.sleep(1.5)
            print(f"{time.monotonic() - start:.2f}s thread {i} releasing")
        finally:
            sem.release()
    else:
        print(f"{time.monotonic() - start:.2f}s thread {i} gave up after 1 s")


threads = [threading.Thread(target=worker, args=(i,)) for i in range(5)]
for t in threads:
    t.start()
for t in threads:
    t.join()
