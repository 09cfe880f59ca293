"""What ``--insecure-transport`` exposes (kept free of heavy imports: the CLI prints it)."""

INSECURE_WARNING = (
    "--insecure-transport: the traffic between parties is plain TCP (gloo, TCPStore). Anyone who "
    "can see the network learns CrypTen's seeds and so every share (for split and vertical: the "
    "cut-layer activations, gradients and the encrypted model), and anyone who can reach the "
    "rendezvous port can join as any hospital. Use it only on a network you trust.")
