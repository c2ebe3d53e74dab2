r"""The lessons' formulas with the learner's numbers plugged in: LaTeX strings for ``st.latex``. No Streamlit.

Each function takes a :class:`sae.app.run_view.RunView` (and a unit j where the formula is about one unit) and
returns a list of LaTeX lines: the formula as UFLDL writes it, then the same with this run's values, then the
result, computed by the library (``sae.core.loss``, ``sae.evaluation``), so the page's numbers are the checks'.

    >>> objective(view)[1]
    'J = 0.302 + 0.0681 + 0.00342 = 0.373'
"""

from __future__ import annotations

import math

import numpy as np
import torch

from sae.app.run_view import NetView, RunView
from sae.core.loss import kl_divergence, kl_divergence_grad
from sae.evaluation.filters import localization, localization_side, orientation
from sae.evaluation.units import DEAD_ACTIVITY, DEAD_RATIO


def tex(x: float, digits: int = 3) -> str:
    """A number in LaTeX: 0.0213, 1.2\\times10^{-5}, 12{,}345; NaN and infinities spelled out."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return r"\text{NaN}"
    if math.isinf(x):
        return r"\infty" if x > 0 else r"-\infty"
    if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e6):
        mantissa, exponent = f"{x:.{max(1, digits - 1)}e}".split("e")
        mantissa = mantissa.rstrip("0").rstrip(".")
        power = rf"10^{{{int(exponent)}}}"
        return power if mantissa == "1" else "-" + power if mantissa == "-1" else rf"{mantissa}\times{power}"
    if abs(x) >= 1000:
        return f"{x:,.0f}".replace(",", "{,}")
    return f"{x:.{digits}g}"


def _kl(rho: float, rho_hat: float) -> float:
    return float(kl_divergence(rho, torch.tensor([rho_hat], dtype=torch.float64))[0])


def _unit(net: NetView, j: int) -> int:
    return int(min(max(j, 0), net.n_units - 1))


# ------------------------------------------------------------------ the objective
def objective(view: RunView, unit: int = 0) -> list[str]:
    """J and its three terms as numbers."""
    net = view.run
    t = net.terms
    w1, w2 = net.weight_norms
    lines = [r"J=\underbrace{\frac1m\sum_{i=1}^m\tfrac12\lVert\hat x_i-x_i\rVert^2}_{\text{reconstruction}}"
             r"+\underbrace{\frac\lambda2\left(\lVert W_1\rVert^2+\lVert W_2\rVert^2\right)}_{\text{weight decay}}"
             r"+\underbrace{\beta\sum_{j=1}^{s}\mathrm{KL}(\rho\,\Vert\,\hat\rho_j)}_{\text{sparsity}}",
             rf"J={tex(t['reconstruction'])}+\frac{{{tex(net.weight_decay)}}}{{2}}\left({tex(w1)}+{tex(w2)}\right)"
             + (rf"+{tex(net.beta)}\cdot{tex(float(net.kl_per_unit.sum()))}" if net.kl else rf"+{tex(t['sparsity'])}"),
             rf"J={tex(t['reconstruction'])}+{tex(t['weight_decay'])}+{tex(t['sparsity'])}={tex(t['total'])}"]
    return lines


def weight_decay(view: RunView, unit: int = 0) -> list[str]:
    net = view.run
    w1, w2 = net.weight_norms
    return [r"\frac\lambda2\left(\lVert W_1\rVert^2+\lVert W_2\rVert^2\right)"
            rf"=\frac{{{tex(net.weight_decay)}}}{{2}}\left({tex(w1)}+{tex(w2)}\right)={tex(net.terms['weight_decay'])}",
            r"\frac{\partial}{\partial W}\,\frac\lambda2\lVert W\rVert^2=\lambda W\quad\text{(a pull towards 0, "
            r"proportional to each weight)}",
            rf"\lambda\lVert W_1\rVert={tex(net.weight_decay)}\cdot{tex(math.sqrt(w1))}="
            rf"{tex(net.weight_decay * math.sqrt(w1))}"]


# ------------------------------------------------------------------ rho_hat_j and the KL term
def rho_hat(view: RunView, unit: int = 0) -> list[str]:
    net = view.run
    j = _unit(net, unit)
    total = float(net.activations[:, j].sum()) if net.activation != "tanh" else float(net.rho_hat[j] * view.m)
    shown = ", ".join(tex(float(v), 2) for v in net.rho_hat[:6]) + (r", \ldots" if net.n_units > 6 else "")
    return [rf"\hat\rho_{{{j}}}=\frac1m\sum_{{i=1}}^{{m}}a_{{{j}}}(x_i)=\frac{{{tex(total)}}}{{{tex(view.m)}}}"
            rf"={tex(float(net.rho_hat[j]))}",
            rf"\hat\rho=\left({shown}\right)\quad\text{{one number per unit, {net.n_units} units}}"]


def kl_unit(view: RunView, unit: int = 0) -> list[str]:
    net = view.run
    j = _unit(net, unit)
    rho, r, beta = net.rho, float(net.rho_hat[j]), net.beta
    kl = float(net.kl_per_unit[j])
    return [r"\beta\,\mathrm{KL}(\rho\,\Vert\,\hat\rho_j)=\beta\left[\rho\log\frac{\rho}{\hat\rho_j}"
            r"+(1-\rho)\log\frac{1-\rho}{1-\hat\rho_j}\right]",
            rf"={tex(beta)}\left[{tex(rho)}\log\frac{{{tex(rho)}}}{{{tex(r)}}}+{tex(1 - rho)}\log"
            rf"\frac{{{tex(1 - rho)}}}{{{tex(1 - r)}}}\right]={tex(beta)}\cdot{tex(kl)}={tex(beta * kl)}"
            rf"\quad(j={j})"]


def kl_sum(view: RunView, unit: int = 0) -> list[str]:
    net = view.run
    total = float(net.kl_per_unit.sum())
    return [rf"\beta\sum_{{j=1}}^{{{net.n_units}}}\mathrm{{KL}}(\rho\,\Vert\,\hat\rho_j)={tex(net.beta)}\cdot"
            rf"{tex(total)}={tex(net.beta * total)}"] + kl_unit(view, unit)


def kl_gradient(view: RunView, unit: int = 0) -> list[str]:
    """What backprop adds to unit j's delta: beta dKL/drho_hat_j, here and at the start (rho_hat_j ~ 0.5)."""
    net = view.run
    j = _unit(net, unit)
    rho, r, beta = net.rho, float(net.rho_hat[j]), net.beta
    now = float(kl_divergence_grad(rho, torch.tensor(min(max(r, 1e-12), 1 - 1e-12), dtype=torch.float64)))
    start = float(kl_divergence_grad(rho, torch.tensor(0.5, dtype=torch.float64)))
    return [r"\beta\,\frac{\partial\,\mathrm{KL}}{\partial\hat\rho_j}=\beta\left(-\frac{\rho}{\hat\rho_j}"
            r"+\frac{1-\rho}{1-\hat\rho_j}\right)",
            rf"\text{{unit {j} now: }}{tex(beta)}\left(-\frac{{{tex(rho)}}}{{{tex(r)}}}+\frac{{{tex(1 - rho)}}}"
            rf"{{{tex(1 - r)}}}\right)={tex(beta * now)}",
            rf"\text{{at the start }}(\hat\rho_j\approx0.5):\ {tex(beta)}\left(-\frac{{{tex(rho)}}}{{0.5}}"
            rf"+\frac{{{tex(1 - rho)}}}{{0.5}}\right)={tex(beta * start)}"]


def dead_rule(view: RunView, unit: int = 0) -> list[str]:
    net = view.run
    j = _unit(net, unit)
    r, top = float(net.rho_hat[j]), float(net.units.max_activity[j])
    dead = j in set(net.dead.tolist())
    verdict = r"\Rightarrow\ \text{dead}" if dead else r"\Rightarrow\ \text{alive}"
    return [rf"\text{{dead}}\iff\hat\rho_j<\frac{{\rho}}{{{1 / DEAD_RATIO:g}}}\ \text{{and}}\ \max_i a_j(x_i)\le"
            rf"{DEAD_ACTIVITY:g}",
            rf"\hat\rho_{{{j}}}={tex(r)}\ \text{{vs}}\ {tex(net.rho * DEAD_RATIO)},\quad\max_i a_{{{j}}}(x_i)={tex(top)}"
            rf"\ {verdict}\qquad\text{{dead units: {len(net.dead)} of {net.n_units}}}"]


def kl_mirror(view: RunView, unit: int = 0) -> list[str]:
    """KL at the unit's rho_hat_j against KL at the same factor on the other side of rho."""
    net = view.run
    j = _unit(net, unit)
    rho, r = net.rho, max(float(net.rho_hat[j]), 1e-12)
    mirror = min(rho * rho / r, 1.0)
    factor = r / rho if r >= rho else rho / r
    here, there = _kl(rho, r), _kl(rho, mirror)
    side = "above" if r >= rho else "below"
    return [r"\mathrm{KL}(\rho\,\Vert\,c\rho)\ \text{vs}\ \mathrm{KL}(\rho\,\Vert\,\rho/c)",
            rf"\text{{unit {j}: }}{factor:.2g}\times\text{{ {side} }}\rho:\ \mathrm{{KL}}({tex(rho)}\,\Vert\,{tex(r)})="
            rf"{tex(here)}\qquad\text{{mirrored: }}\mathrm{{KL}}({tex(rho)}\,\Vert\,{tex(mirror)})={tex(there)}"]


def asymmetry(view: RunView, unit: int = 0) -> list[str]:
    return kl_mirror(view, unit) + kl_unit(view, unit)


# ------------------------------------------------------------------ filters
def orientation_share(view: RunView, unit: int = 0) -> list[str]:
    net = view.run
    if view.image_shape is None:
        return [r"\text{(not images: no filter measure)}"]
    j = _unit(net, unit)
    shares = orientation(net.filters, view.image_shape)
    return [r"s_j=\frac{|F_j(k^*)|^2+|F_j(-k^*)|^2}{\sum_{k}|F_j(k)|^2},\quad F_j=\mathrm{DFT}\big(W_{1,j}-"
            r"\overline{W_{1,j}}\big),\ k^*=\arg\max_k|F_j(k)|",
            rf"s_{{{j}}}={tex(float(shares[j]), 2)}\quad(\text{{edge-like from }}0.3)\qquad"
            rf"\text{{median over units: }}{tex(float(np.median(shares)), 2)}"]


def localization_share(view: RunView, unit: int = 0) -> list[str]:
    net = view.run
    if view.image_shape is None:
        return [r"\text{(not images: no filter measure)}"]
    j = _unit(net, unit)
    side = localization_side(view.image_shape)
    shares = localization(net.filters, view.image_shape)
    return [rf"\ell_j=\max_{{{side}\times{side}\text{{ window }}B}}\frac{{\sum_{{p\in B}}(w_p-\bar w)^2}}"
            r"{\sum_p(w_p-\bar w)^2}",
            rf"\ell_{{{j}}}={tex(float(shares[j]), 2)}\qquad\text{{median over units: }}"
            rf"{tex(float(np.median(shares)), 2)}"]


def filters(view: RunView, unit: int = 0) -> list[str]:
    return orientation_share(view, unit) + localization_share(view, unit)


# ------------------------------------------------------------------ the twin
def twin_dead(view: RunView, unit: int = 0) -> list[str]:
    """Dead units of the run and the twin, and the penalty's push at the start for each."""
    run, twin = view.run, view.twin
    if twin is None:
        return kl_gradient(view, unit) + dead_rule(view, unit)
    start = float(kl_divergence_grad(run.rho, torch.tensor(0.5, dtype=torch.float64)))
    return [r"\text{the push of the penalty on each unit at the start }(\hat\rho_j\approx0.5):\ "
            r"\mathrm{lr}\cdot\beta\left(-\frac{\rho}{0.5}+\frac{1-\rho}{0.5}\right)",
            rf"\text{{run: }}{tex(run.hyper['lr'])}\cdot{tex(run.beta)}\cdot{tex(start)}="
            rf"{tex(run.hyper['lr'] * run.beta * start)}\qquad\text{{twin: }}{tex(twin.hyper['lr'])}\cdot"
            rf"{tex(twin.beta)}\cdot{tex(start)}={tex(twin.hyper['lr'] * twin.beta * start)}",
            rf"\text{{dead units: run {len(run.dead)} of {run.n_units},\ twin {len(twin.dead)} of {twin.n_units}}}"]


def twin_decay(view: RunView, unit: int = 0) -> list[str]:
    run, twin = view.run, view.twin
    if twin is None:
        return weight_decay(view, unit)
    return [r"\frac\lambda2\left(\lVert W_1\rVert^2+\lVert W_2\rVert^2\right)",
            rf"\text{{run: }}\frac{{{tex(run.weight_decay)}}}{{2}}\cdot{tex(run.weight_norm2)}="
            rf"{tex(run.terms['weight_decay'])}\qquad\text{{twin: }}\frac{{{tex(twin.weight_decay)}}}{{2}}\cdot"
            rf"{tex(twin.weight_norm2)}={tex(twin.terms['weight_decay'])}"]


# ------------------------------------------------------------------ the common mistakes
def mistake_scalar(view: RunView, unit: int = 0) -> list[str]:
    lines = [r"\text{correct: }\beta\sum_j\mathrm{KL}(\rho\,\Vert\,\hat\rho_j),\ \hat\rho_j=\frac1m\sum_i a_{ij}"
             r"\qquad\text{mistake: }\beta\,\mathrm{KL}(\rho\,\Vert\,\bar\rho),\ \bar\rho=\frac1{ms}\sum_{i,j}a_{ij}"]
    result = view.mistakes.get("rho_hat_scalar")
    if result is not None and result.wrong is not None:
        w = result.wrong.rho_hat
        lines.append(rf"\text{{with the mistake: }}\bar\rho={tex(float(w.mean()))}\approx\rho={tex(result.rho)}"
                     rf"\ \text{{but}}\ \hat\rho_j\in[{tex(float(w.min()))},\,{tex(float(w.max()))}]")
    return lines


def mistake_every_activation(view: RunView, unit: int = 0) -> list[str]:
    return [r"\text{correct: }\beta\sum_j\mathrm{KL}\Big(\rho\,\Big\Vert\,\frac1m\sum_i a_{ij}\Big)"
            r"\qquad\text{mistake: }\beta\sum_j\frac1m\sum_i\mathrm{KL}(\rho\,\Vert\,a_{ij})"]


def mistake_linear(view: RunView, unit: int = 0) -> list[str]:
    lines = [r"a=W_1x+b_1\in\mathbb R\ \Rightarrow\ \hat\rho_j<0\ \text{possible},\ \log\frac{\rho}{\hat\rho_j}="
             r"\text{NaN}"]
    result = view.mistakes.get("linear_encoder")
    if result is not None and result.wrong is not None:
        r = result.wrong.rho_hat
        j = int(np.argmin(r))
        lines.append(rf"\hat\rho_{{{j}}}={tex(float(r[j]))}:\ \log\frac{{{tex(result.rho)}}}{{{tex(float(r[j]))}}}"
                     r"=\text{NaN}")
    return lines


__all__ = ["tex", "objective", "weight_decay", "rho_hat", "kl_unit", "kl_sum", "kl_gradient", "dead_rule",
           "kl_mirror", "asymmetry", "orientation_share", "localization_share", "filters", "twin_dead", "twin_decay",
           "mistake_scalar", "mistake_every_activation", "mistake_linear"]
