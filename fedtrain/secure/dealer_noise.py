"""DP noise from the TTP dealer (``--dp-noise dealer``): one Gaussian draw, secret-shared.

Split and vertical already rely on a dealer (CrypTen's TTP provider, docs/threat-model.md): a
separate process that hands out Beaver triples and must collude with no party — if it did, the
triples would open every secret-shared value, DP or not. Under that same assumption the dealer
can also draw the DP noise of an encrypted gradient sum: it draws N(0, std²) **once** from its
own CSPRNG (fedtrain/secure_noise.py) and secret-shares it exactly as it shares a triple's
product (CrypTen's ``TTPServer.square``): every party but party 0 draws its share from the
generator it shares with the dealer, party 0 receives noise − Σ those shares. Each party adds its
share of the noise to its share of the gradient: the secret becomes gradient + noise, and no
party or coalition of parties knows the noise (party 0's share is masked by the others' uniform
shares; the others' are uniform).

Against local noise (every party adds the full N(0, std²): √P times the noise on the secret) and
distributed noise (each adds a 1/(P − 1) share of the variance: √(P/(P − 1)) times, and a
guarantee against one other party only), the dealer's noise has exactly the calibrated std, and
the guarantee holds against any coalition of parties as long as the dealer colludes with none —
the trust every triple already needs.

:class:`NoiseDealer` is the dealer process's server (CrypTen's, plus one request);
:func:`noise_share` is the parties' side.
"""

from __future__ import annotations

import torch
from crypten_fl.fedtrain.compat import crypten
from crypten_fl.fedtrain.secure_noise import SecureRandom

#: the request's name, a method of :class:`NoiseDealer`
REQUEST = "dp_noise"


class NoiseDealer(crypten.mpc.provider.TTPServer):
    """CrypTen's TTP server with one more request: a secret-sharing of Gaussian noise.

    Constructing it serves requests until the parties terminate it (as ``TTPServer`` does)."""

    def __init__(self) -> None:
        self._dp_rng = SecureRandom()  # before the serving loop, which runs in __init__
        super().__init__()

    def dp_noise(self, size: torch.Size, std: float, precision_bits: int) -> torch.Tensor:
        """Party 0's share of N(0, std²) noise of ``size``: the noise, encoded, minus the
        shares the other parties draw from their generators (the others' are never sent)."""
        if not (std >= 0 and std < float("inf")):
            raise ValueError(f"noise std must be finite and >= 0, got {std}")
        noise = self._dp_rng.normal_like(torch.empty(size, dtype=torch.float64), std)
        encoded = crypten.encoder.FixedPointEncoder(precision_bits).encode(noise)
        return encoded - self._get_additive_PRSS(size, remove_rank=True)


def noise_share(size: torch.Size, std: float, precision_bits: int) -> torch.Tensor:
    """This party's share (ring elements) of the dealer's N(0, std²) noise of ``size``; every
    party calls it in the same order (the shares of parties 1… come from their generators)."""
    from crypten.common.rng import generate_random_ring_element
    from crypten.mpc.provider.ttp_provider import TTPClient

    client = TTPClient.get()
    if crypten.communicator.get().get_rank() == 0:
        return client.ttp_request(REQUEST, None, torch.Size(size), float(std), precision_bits)
    return generate_random_ring_element(torch.Size(size), generator=client.get_generator())
