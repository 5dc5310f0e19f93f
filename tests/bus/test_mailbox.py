"""The bounded mailbox behind the bus and each subscription actor."""

from __future__ import annotations

import asyncio

from mnemo_events.bus._mailbox import Mailbox


def test_offer_reports_depth_and_refuses_when_full() -> None:
    """offer returns the new depth, or -1 when the capacity is reached."""
    box: Mailbox[int] = Mailbox(2)
    assert [box.offer(1), box.offer(2), box.offer(3)] == [1, 2, -1]
    assert len(box) == 2


def test_take_and_put_back_keep_fifo_order() -> None:
    """take hands out the oldest items; put_back returns unhandled ones to the front."""
    box: Mailbox[int] = Mailbox()
    box.extend([1, 2, 3, 4])
    taken = box.take(3)
    assert taken == [1, 2, 3]
    box.put_back(taken[1:])
    assert box.take(10) == [2, 3, 4]
    assert box.take(10) == []


async def test_take_of_one_some_or_all_lets_as_many_producers_in() -> None:
    """Taking one, some or every item keeps FIFO order and wakes one waiting producer each."""
    box: Mailbox[int] = Mailbox(3)
    box.extend([1, 2, 3])
    putters = [asyncio.create_task(box.put(n, 5.0)) for n in (4, 5, 6)]
    await asyncio.sleep(0)
    assert box.take(1) == [1]
    assert box.take(2) == [2, 3]
    await asyncio.wait_for(asyncio.gather(*putters), 5.0)
    assert box.take(10) == [4, 5, 6]
    assert len(box) == 0


async def test_put_waits_for_room_and_gives_up_after_max_wait() -> None:
    """A full mailbox makes put wait; room lets it in, no room by the deadline refuses."""
    box: Mailbox[int] = Mailbox(1)
    box.offer(1)
    waiting = asyncio.create_task(box.put(2, max_wait=5))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    assert box.take(1) == [1]
    assert await waiting is True
    assert await box.put(3, max_wait=0.01) is False
    assert box.take(5) == [2]


async def test_wait_wakes_on_the_first_item() -> None:
    """wait returns once an item arrives."""
    box: Mailbox[int] = Mailbox()
    waiter = asyncio.create_task(box.wait())
    await asyncio.sleep(0)
    assert not waiter.done()
    box.offer(7)
    async with asyncio.timeout(5):
        await waiter


def test_a_waiter_of_a_closed_loop_is_ignored() -> None:
    """A consumer left waiting by a loop that closed does not break the next producer."""
    box: Mailbox[int] = Mailbox()

    async def abandon() -> None:
        asyncio.get_running_loop().create_task(box.wait())
        await asyncio.sleep(0)

    asyncio.run(abandon())
    assert box.offer(1) == 1  # waking the stale waiter would raise "Event loop is closed"


def test_clear_counts_what_it_drops() -> None:
    """clear empties the mailbox and says how many items were dropped."""
    box: Mailbox[int] = Mailbox()
    box.extend([1, 2, 3])
    assert box.clear() == 3
    assert len(box) == 0
