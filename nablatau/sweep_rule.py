"""What the α₀ sweep (:mod:`nablatau.sweep`) and its figures (:mod:`nablatau.sweep_figures`) share.

The folder the sweep's results files land in and the paper's α₀ rule on a forget fraction. Kept
apart, with no import beyond the standard library, so that reading results never imports the
training code (torch, Ray).

    >>> NOTEBOOK, rule_alpha0(0.03), rule_alpha0(0.3)
    ('alpha_split_sweep', 0.05, 0.5)
"""

from __future__ import annotations

NOTEBOOK = "alpha_split_sweep"  # results land in <output_dir>/alpha_split_sweep/<run-id>.json


def rule_alpha0(fraction: float) -> float:
    """The paper's α₀ = 5/3 · forget fraction, rounded to 6 digits.

    :func:`nablatau.nabla_tau.default_alpha0` is the same rule on set sizes; on
    ``(fraction, 1 - fraction)`` it gives bit for bit the same float (``fraction + (1 - fraction)``
    rounds to exactly 1.0), so sweep cells and their figures agree with ∇τ's default. Rounding keeps
    cell identities and table labels tidy (5/3 · 0.1 is 0.16666666666666669 in floats).

    Args:
        fraction: the forget fraction, in (0, 1).

    Returns:
        α₀ for that fraction, rounded to 6 decimal digits.

        >>> from nablatau.nabla_tau import default_alpha0
        >>> rule_alpha0(0.1), rule_alpha0(0.3) == round(default_alpha0(300, 700), 6)
        (0.166667, True)
        >>> all(rule_alpha0(f) == round(default_alpha0(f, 1 - f), 6) for f in [k / 1000 for k in range(1, 601)])
        True
    """
    return round(5.0 / 3.0 * fraction, 6)
