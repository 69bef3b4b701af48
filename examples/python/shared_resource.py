"""A database that serves at most two connections at a time, used by five client threads.

The standard-library version differs only in the import: `from threading import Semaphore`.
"""
import threading
import time

from futex_semaphore import Semaphore  # was: from threading import Semaphore


class Database:
    def __init__(self, connections):
        self.connections = Semaphore(connections)

    def query(self, client):
        with self.connections:
            print(f"client {client} connected")
            time.sleep(0.1)
            print(f"client {client} disconnected")


db = Database(2)
clients = [threading.Thread(target=db.query, args=(i,)) for i in range(5)]
for c in clients:
    c.start()
for c in clients:
    c.join()
