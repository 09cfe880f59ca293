"""Federation identities: a CA per federation, a kit per member, peers told apart by certificate.

``provision`` writes the kits, ``load_kit`` gives a site its own identity, and
``Federation.identify`` / ``Federation.verify`` tell which member a peer certificate or a
signature belongs to (the TLS transport calls them). See docs/provision.md.
"""

from crypten_fl.fedtrain.identity.errors import IdentityError
from crypten_fl.fedtrain.identity.federation import Federation, Member
from crypten_fl.fedtrain.identity.kit import Kit, load_kit
from crypten_fl.fedtrain.identity.provision import provision, provision_ephemeral, rotate

__all__ = ["Federation", "IdentityError", "Kit", "Member", "load_kit", "provision",
           "provision_ephemeral", "rotate"]
