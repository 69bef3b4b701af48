"""Three tasks, at most two at once (asyncio's tutorial).

The standard-library version differs only in the import: it uses `asyncio.Semaphore`.
"""
import asyncio

from futex_semaphore import AsyncSemaphore as Semaphore  # was: from asyncio import Semaphore


async def worker(name, sem):
    print(f"{name} waiting")
    async with sem:
        print(f"{name} acquired")
        await asyncio.sleep(0.2)
    print(f"{name} released")


async def main():
    sem = Semaphore(2)
    await asyncio.gather(*(worker(f"worker {i}", sem) for i in range(3)))


asyncio.run(main())
