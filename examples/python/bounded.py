"""A BoundedSemaphore refuses a release above its start (ValueError); a Semaphore grows.

The standard-library version differs only in the import:
`from threading import BoundedSemaphore, Semaphore`.
"""
from futex_semaphore import BoundedSemaphore, Semaphore  # was: from threading import ...

sem = BoundedSemaphore(2)
sem.acquire()
sem.release()
try:
    sem.release()
except ValueError as e:
    print("BoundedSemaphore refused:", e)

plain = Semaphore(2)
plain.release()
print("Semaphore accepted, value is now", plain._value)
