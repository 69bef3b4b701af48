"""Three processes share two permits (multiprocessing's tutorial).

The standard-library version differs only in the import:
`from multiprocessing import Process, Semaphore`.
"""
import os
import time
from multiprocessing import Process

from futex_semaphore import ProcessSemaphore as Semaphore  # was: from multiprocessing import Semaphore


def worker(i, sem):
    with sem:
        print(f"worker {i} (pid {os.getpid()}) acquired", flush=True)
        time.sleep(0.2)
        print(f"worker {i} (pid {os.getpid()}) released", flush=True)


if __name__ == "__main__":
    sem = Semaphore(2)
    procs = [Process(target=worker, args=(i, sem)) for i in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    print("value", sem.get_value())
