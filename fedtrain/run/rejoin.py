"""A hospital rejoining, or resuming behind the others: how it gets back the common state.

Between rounds every member of the secure group holds the same *global state* (the shared
parameters; FedMTL also the mean of the heads): it is what the last secure aggregation revealed
to all of them. A hospital that missed rounds (it dropped out and rejoins, or it is resumed from
an older checkpoint than the others) gets that state from a member that has it; its personal
layers, optimizer and RNG come from its own latest checkpoint. Nothing else is sent, and what is
sent is what the hospital would have obtained had it stayed (docs/reliability.md).
"""

from __future__ import annotations

import torch
from crypten_fl.fedtrain import strategies
from crypten_fl.fedtrain.compat import crypten
from crypten_fl.fedtrain.secure import group, reveal_audit, tags
from crypten_fl.fedtrain.secure.reveal_audit import revealing
from crypten_fl.fedtrain.secure.tensors import flatten, unflatten


def sync_global_state(strategy: strategies.Strategy, have: int) -> int:
    """Bring every member to the latest completed round; returns that round.

    ``have`` is the last round this hospital completed. All members exchange it; if some are
    behind, the first member that is up to date broadcasts the global state.
    """
    comm = crypten.communicator.get()
    if comm.get_world_size() == 1:
        return have
    rounds = [int(t) for t in comm.all_gather(torch.tensor([have], dtype=torch.int64))]
    latest = max(rounds)
    if min(rounds) == latest:
        return latest
    state = strategy.global_state()
    flat = flatten(state) if state else torch.zeros(0, dtype=torch.float64)
    if have < latest:
        with revealing(tags.GLOBAL_STATE):
            reveal_audit.record(None, flat.numel())
    torch.distributed.broadcast(flat, src=rounds.index(latest), group=comm.main_group)
    if have < latest and state:
        strategy.load_global_state(unflatten(flat, state))
    return latest


def admit_rejoining(strategy: strategies.Strategy, completed: int) -> list[int]:
    """At a round boundary: take back hospitals that asked to rejoin, and hand them the state.

    A no-op (no collective at all) unless the group tolerates dropouts and someone is absent.
    """
    secure_group = group.current()
    if secure_group is None or not secure_group.tolerant:
        return []
    aggregator = strategy.session.aggregator
    joiners = secure_group.admit(lambda asks: aggregator.sum(asks, what=tags.JOIN_REQUESTS))
    if joiners:
        aggregator.rekey()
        sync_global_state(strategy, completed)
    return joiners
