"""Authenticated, encrypted transport between the members of a federation.

torch 2.13's CPU wheel has no TLS in gloo and its TCPStore is plaintext (DESIGN.md, "Transport
and identities"), and CrypTen sends its secrets' seeds with plain ``isend``. So every byte between
members goes through this package instead:

- :mod:`~fedtrain.transport.channels`: TLS 1.3 contexts pinned to the federation's CA, and the
  check that a peer's certificate is the member it claims to be;
- :mod:`~fedtrain.transport.links`: one-way framed message links over those sockets, each read by
  its own thread so that sends never wait for the peer's program;
- :mod:`~fedtrain.transport.mesh`: the listener that accepts links and the dialer that opens them;
- :mod:`~fedtrain.transport.collectives`: the collective algorithms (direct and ring) over links;
- :mod:`~fedtrain.transport.process_group`: a torch.distributed backend (``cfltls``) built from
  the above, which CrypTen uses without knowing;
- :mod:`~fedtrain.transport.store`: the rendezvous store (a ``torch.distributed.Store``) over the
  same channels, with keys that only their owner may write.
"""
