"""Pure-Python CPU jobs: they hold the GIL for their whole run.

On threads, N of these share one core's worth of interpreter time; on processes
each gets its own interpreter and its own core.
"""

from __future__ import annotations

from coredash.taskapi import checkpoint, task


@task(
    description="Count primes below n by trial division (pure Python, holds the GIL)",
    size="n",
    default=480_000,
    unit="numbers",
    releases_gil=False,
    kind="cpu",
)
def count_primes(n: int = 480_000) -> int:
    if n < 0:
        raise ValueError("n must be >= 0")
    count = 1 if n > 2 else 0
    # A checkpoint every 256 numbers: a few ms of work even near a million, so a
    # cancelled thread job stops quickly however many threads share the GIL.
    for start in range(3, n, 256):
        checkpoint()
        for candidate in range(start, min(start + 256, n), 2):
            divisor = 3
            while divisor * divisor <= candidate:
                if candidate % divisor == 0:
                    break
                divisor += 2
            else:
                count += 1
    return count


@task(
    description="Escape-time Mandelbrot, rows x 240 points (pure Python, holds the GIL)",
    size="rows",
    default=960,
    unit="rows",
    releases_gil=False,
    kind="cpu",
)
def mandelbrot(rows: int = 960, width: int = 240, max_iter: int = 100) -> int:
    """Return the total number of iterations spent (a checksum of the work)."""
    if rows < 1 or width < 1:
        raise ValueError("rows and width must be >= 1")
    total = 0
    for row in range(rows):
        checkpoint()
        imag = -1.2 + 2.4 * row / rows
        for column in range(width):
            c = complex(-2.1 + 3.0 * column / width, imag)
            z = 0j
            iterations = 0
            while iterations < max_iter and abs(z) <= 2.0:
                z = z * z + c
                iterations += 1
            total += iterations
    return total
