"""Job functions run inside real CrypTen party processes by the tests (via fedtrain.launch)."""

from __future__ import annotations

from typing import Any

import torch
from crypten_fl.fedtrain.party import PartyContext
from safetensors.torch import save_file


def party_vector(seed: int, rank: int, n: int, scale: float) -> torch.Tensor:
    """The deterministic private vector of party ``rank`` (values of both signs)."""
    gen = torch.Generator().manual_seed(seed * 1000 + rank)
    return torch.randn(n, generator=gen) * scale


def textbook_sum(ctx: PartyContext) -> dict[str, Any]:
    """CrypTen's own recipe: every party secret-shares its vector, shares are added, revealed."""
    from crypten_fl.fedtrain.compat import crypten

    n, seed, scale = ctx.spec["n"], ctx.spec["seed"], ctx.spec["scale"]
    mine = party_vector(seed, ctx.rank, n, scale)
    total = None
    for src in range(ctx.world_size):
        enc = crypten.cryptensor(mine if src == ctx.rank else torch.zeros(n), src=src)
        total = enc if total is None else total + enc
    save_file({"sum": total.get_plain_text()}, str(ctx.workdir / "sum.safetensors"))
    return {"rank": ctx.rank}


def secure_weighted_mean(ctx: PartyContext) -> dict[str, Any]:
    """The project's SecureAggregator, recording every share this party sends."""
    from crypten_fl.fedtrain.secure.aggregator import PlainAggregator, SecureAggregator

    n, seed, scale = ctx.spec["n"], ctx.spec["seed"], ctx.spec["scale"]
    mine = party_vector(seed, ctx.rank, n, scale)
    weight = float(ctx.spec["weights"][ctx.rank])
    import crypten_fl.fedtrain.secure.aggregator as aggregator_module

    sent: list[torch.Tensor] = []
    original = aggregator_module.reveal_sum

    def recording_reveal(share: torch.Tensor) -> None:
        sent.append(share.clone())  # exactly what this party puts into the all-reduce
        original(share)

    aggregator_module.reveal_sum = recording_reveal
    cls = SecureAggregator if ctx.spec.get("secure", True) else PlainAggregator
    agg = cls(degree=ctx.spec.get("degree"))
    mean, total_weight = agg.weighted_mean(mine, weight)
    aggregator_module.reveal_sum = original
    tensors = {"mean": mean}
    tensors.update({f"sent_{i}": t for i, t in enumerate(sent)})
    save_file(tensors, str(ctx.workdir / "out.safetensors"))
    stats = agg.stats
    return {"total_weight": total_weight, "bytes": stats.bytes_communicated, "calls": stats.calls}


def crash_after_event(ctx: PartyContext) -> dict[str, Any]:
    """Rank given by spec crashes after emitting an event; the others wait in a collective."""
    from crypten_fl.fedtrain.compat import crypten

    ctx.emit("round_done", round=1)
    if ctx.rank == ctx.spec["crash_rank"]:
        raise RuntimeError("simulated hospital crash")
    crypten.communicator.get().all_reduce(torch.zeros(4, dtype=torch.int64))
    return {}


def blocks_to_owners(ctx: PartyContext) -> dict[str, Any]:
    """Each party shares a block of rows; an encrypted linear map is applied; each block of the
    result is revealed to its owner only. Saves what this party obtained for every block."""
    from crypten_fl.fedtrain.compat import crypten
    from crypten_fl.fedtrain.secure.encrypted_head import (
        EncryptedHead,
        reveal_to_owners,
        share_blocks,
    )

    sizes = ctx.spec["sizes"]
    mine = torch.full((sizes[ctx.rank], 3), float(ctx.rank + 1))
    torch.manual_seed(0)
    head = EncryptedHead(torch.nn.Sequential(torch.nn.Linear(3, 2)))
    _, enc = share_blocks(mine, [(s, 3) for s in sizes], ctx.rank, 0)
    out = head(enc)
    got = reveal_to_owners(out, sizes, ctx.rank, 0, "test block")
    # what this party would see of the OTHER blocks: its own share, decoded
    others = {f"share_{k}": out.index_select(0, torch.arange(sum(sizes[:k]), sum(sizes[:k + 1])))
              .share.double() / 2**16 for k in range(len(sizes)) if k != ctx.rank and sizes[k]}
    save_file({"mine": got if got is not None else torch.zeros(0), **others},
              str(ctx.workdir / "out.safetensors"))
    _ = crypten
    return {}


def psi_align(ctx: PartyContext) -> dict[str, Any]:
    """Private set intersection on ``spec["keys"]``; writes this party's aligned rows."""
    import json

    from crypten_fl.fedtrain.compat import crypten
    from crypten_fl.fedtrain.secure.psi import CryptenChannel, align

    comm = crypten.communicator.get()
    before = comm.get_communication_stats()["bytes"]
    result = align(ctx.spec["keys"], ctx.rank, ctx.world_size, CryptenChannel(),
                   label_party=ctx.spec.get("label_party", 0))
    (ctx.workdir / "psi_rows.json").write_text(json.dumps(result.rows.tolist()))
    return {"size": result.size, "bytes_sent": result.bytes_sent,
            "crypten_bytes": comm.get_communication_stats()["bytes"] - before}


def sums_with_dropouts(ctx: PartyContext) -> dict[str, Any]:
    """``calls`` secure sums of fresh vectors; CRYPTEN_FL_KILL_AT="<rank>:<call>" kills parties
    in the middle of a call. Returns every sum this party obtained and its group's history."""
    from crypten_fl.fedtrain import faults
    from crypten_fl.fedtrain.secure import group
    from crypten_fl.fedtrain.secure.aggregator import SecureAggregator

    n, seed, scale = ctx.spec["n"], ctx.spec["seed"], ctx.spec["scale"]
    agg = SecureAggregator()
    sums = {}
    for call in range(ctx.spec["calls"]):
        faults.at_round(ctx.rank, call)
        sums[call] = agg.sum(party_vector(seed + call, ctx.rank, n, scale)).tolist()
    current = group.current()
    return {"rank": ctx.rank, "sums": sums, "members": current.members,
            "history": current.history}


def transport_collectives(ctx: PartyContext) -> dict[str, Any]:
    """torch.distributed calls over the cfltls backend (what CrypTen and the project use)."""
    import time

    import torch.distributed as dist
    from crypten_fl.fedtrain.compat import crypten
    from crypten_fl.fedtrain.transport import process_group

    comm = crypten.communicator.get()
    main, rank, n = comm.main_group, ctx.rank, ctx.world_size
    out: dict[str, Any] = {"backend": dist.get_backend(main)}
    floats = torch.randn(300_000, generator=torch.Generator().manual_seed(rank),
                         dtype=torch.float64)  # ring path
    dist.all_reduce(floats, group=main)
    save_file({"floats": floats}, str(ctx.workdir / "floats.safetensors"))
    ints = torch.full((5,), rank + 1, dtype=torch.int64)
    dist.all_reduce(ints, group=main)
    out["ints"] = ints.tolist()
    b = torch.tensor([rank * 10])
    dist.broadcast(b, 2, group=main)
    out["broadcast"] = b.item()
    pair = dist.new_group([0, 2])  # a sub-group shares the world's links
    if rank in (0, 2):
        s = torch.tensor([float(rank)])
        dist.all_reduce(s, group=pair)
        out["pair_sum"] = s.item()
    nxt, prev = (rank + 1) % n, (rank - 1) % n
    early = torch.zeros(3)
    req = dist.irecv(early, prev, group=main)  # posted before the message is sent
    time.sleep(0.3)
    dist.isend(torch.full((3,), float(rank)), nxt, group=main).wait()
    req.wait()
    out["ring_p2p"] = early.tolist()
    silent = torch.tensor(1, dtype=torch.int32)
    try:  # nobody sends: the receive must fail at the timeout, not return stale data
        dist.irecv(silent, prev, group=dist.new_group(list(range(n)),
                                                      timeout=__import__("datetime")
                                                      .timedelta(seconds=1))).wait()
        out["silent"] = f"returned {silent.item()}"
    except RuntimeError as err:
        out["silent"] = str(err)
    dist.barrier(group=main)
    out["sent_received"] = list(process_group.traffic())
    return out


def substituted_key(ctx: PartyContext) -> dict[str, Any]:
    """Key agreement where the all-gather delivers a forged announcement for hospital 1 (a man
    in the middle, or a relaying peer): every other party must refuse it."""
    from crypten_fl.fedtrain.compat import crypten
    from crypten_fl.fedtrain.secure import keys
    from crypten_fl.fedtrain.secure.aggregator import SecureAggregator

    comm = crypten.communicator.get()
    original = comm.all_gather
    forger = keys.KeyPair()  # the attacker's own key pair, announced as hospital 1's

    def tampered(tensor: torch.Tensor) -> list[torch.Tensor]:
        gathered = original(tensor)
        if ctx.rank != 1 and ctx.spec["forge"]:
            fake = keys.announce(forger, b"x", 1, "hospital_1", None)  # unsigned, or:
            if ctx.spec["forge"] == "replayed signature":  # hospital 1's signature, other key
                real = gathered[1].numpy().tobytes()
                fake = forger.public_bytes + real[keys.PUBLIC_KEY_BYTES:]
            gathered[1] = torch.frombuffer(bytearray(fake), dtype=torch.int64).clone()
        return gathered

    comm.all_gather = tampered
    try:
        SecureAggregator()
        return {"outcome": "accepted"}
    except keys.ForgedKey as err:
        return {"outcome": str(err)}
    finally:
        comm.all_gather = original


def own_surroundings(ctx: PartyContext) -> dict[str, Any]:
    """What a party process finds around it: its environment, directory, process ids."""
    import os

    print(f"party {ctx.rank} writes to its own log")
    return {"env": dict(os.environ), "cwd": os.getcwd(), "pid": os.getpid(),
            "parent": os.getppid()}


def hang(ctx: PartyContext) -> dict[str, Any]:
    """Rank 1 stops itself (alive, silent, as a hung machine); the others wait for ever."""
    import os
    import signal
    import time

    ctx.emit("hanging")
    if ctx.rank == 1:
        os.kill(os.getpid(), signal.SIGSTOP)
    while True:
        time.sleep(1)


def private_top_gradient(ctx: PartyContext) -> dict[str, Any]:
    """Vertical DP's encrypted step without noise: every party shares its block of features
    (``spec["features"][rank]``), party 0 its labels; one step of ``noisy_gradient_step`` with
    std 0, lr −1 and n 1 turns the top model's weights into (initial + gradient sum); party 0
    saves the revealed weights."""
    from crypten_fl.fedtrain.compat import crypten
    from crypten_fl.fedtrain.secure.encrypted_head import EncryptedHead, share_blocks
    from crypten_fl.fedtrain.secure_noise import SecureRandom
    from crypten_fl.fedtrain.strategies.vertical_private import noisy_gradient_step

    blocks = [torch.tensor(b, dtype=torch.float32) for b in ctx.spec["features"]]
    labels = torch.tensor(ctx.spec["labels"], dtype=torch.float32)
    torch.manual_seed(0)
    layer = torch.nn.Linear(sum(b.shape[1] for b in blocks), labels.shape[1])
    with torch.no_grad():
        layer.weight.mul_(ctx.spec["weight_scale"])  # large logits: σ near 0 and 1
    top = EncryptedHead(torch.nn.Sequential(layer))
    _, x = share_blocks(blocks[ctx.rank], [tuple(b.shape) for b in blocks], ctx.rank, 1,
                        requires_grad=False)
    y = crypten.cryptensor(labels if ctx.rank == 0 else torch.zeros_like(labels), src=0)
    chunks = ctx.spec["chunks"]
    rows = [slice(i * len(labels) // chunks, (i + 1) * len(labels) // chunks)
            for i in range(chunks)]
    noisy_gradient_step(top, [x[r] for r in rows], [y[r] for r in rows], lr=-1.0, n=1,
                        std=0.0, rng=SecureRandom())
    layer = top.reveal()[0]
    if ctx.rank == 0:
        save_file({"weight": layer.weight.detach(), "bias": layer.bias.detach()},
                  str(ctx.workdir / "top.safetensors"))
    return {}
