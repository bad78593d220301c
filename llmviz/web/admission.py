"""Admission: at most `max_active` runs compute at once; the next `max_queue` wait in line.

A request that arrives while every slot is taken does not get 429: it takes a Ticket and
waits its turn, first come first served, and learns its place as the line moves
(`Ticket.wait`). Only a full line is refused (the caller answers 429 with Retry-After).
Whoever leaves (a finished run, or a client that went away while waiting) calls
`Ticket.leave()`, and the next in line is admitted. One Admission per process: with
several gunicorn workers each has its own line in front of its own scheduler.

    ticket = admission.enter()            # raises LineFull
    try:
        while not ticket.admitted:
            ahead = ticket.wait(ahead, timeout=15)   # -> people ahead, None once admitted
        ...                                # compute the run
    finally:
        ticket.leave()
"""
import threading
import time


class LineFull(Exception):
    """Every slot is computing and the line is at its bound."""


class Ticket:
    """One request's place: waiting in line, then admitted (holding a slot), then gone."""

    def __init__(self, admission):
        self.admission = admission
        self.admitted = False
        self.gone = False

    @property
    def ahead(self):
        """How many wait in line ahead of this ticket; None once admitted (or gone)."""
        return self.admission.ahead_of(self)

    def wait(self, last=None, timeout=None):
        """Block until admitted, until the place in line differs from `last`, or `timeout`
        seconds. -> the place now (None when admitted)."""
        return self.admission.wait(self, last, timeout)

    def wait_admitted(self, timeout) -> bool:
        """Block until admitted or `timeout` seconds have passed. -> admitted?"""
        deadline = time.monotonic() + timeout
        while not self.admitted and time.monotonic() < deadline:
            self.wait(self.ahead, deadline - time.monotonic())
        return self.admitted

    def leave(self):
        """Give back the slot, or the place in line (idempotent)."""
        self.admission.leave(self)


class Admission:
    """A counting semaphore with a bounded FIFO line in front of it."""

    def __init__(self, max_active: int, max_queue: int):
        self.max_active = int(max_active)
        self.max_queue = int(max_queue)
        self.active = 0
        self.line = []                      # Tickets waiting, first come first
        self.changed = threading.Condition()

    def enter(self) -> Ticket:
        """A ticket admitted at once when a slot is free, else placed at the end of the line."""
        ticket = Ticket(self)
        with self.changed:
            if self.active < self.max_active and not self.line:
                self.active += 1
                ticket.admitted = True
            elif len(self.line) >= self.max_queue:
                raise LineFull(f"{self.active} runs are computing and {len(self.line)} are waiting")
            else:
                self.line.append(ticket)
                self.changed.notify_all()
        return ticket

    def ahead_of(self, ticket):
        with self.changed:
            return self._place(ticket)

    def wait(self, ticket, last, timeout):
        with self.changed:
            self.changed.wait_for(lambda: ticket.admitted or ticket.gone or self._place(ticket) != last, timeout)
            return self._place(ticket)

    def _place(self, ticket):
        return self.line.index(ticket) if ticket in self.line else None

    def leave(self, ticket):
        with self.changed:
            if ticket.gone:
                return
            ticket.gone = True
            if ticket.admitted:
                self.active -= 1
            else:
                self.line.remove(ticket)
            while self.line and self.active < self.max_active:   # the next in line takes the slot
                self.active += 1
                self.line.pop(0).admitted = True
            self.changed.notify_all()

    @property
    def waiting(self) -> int:
        with self.changed:
            return len(self.line)
