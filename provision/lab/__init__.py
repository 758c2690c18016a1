"""A local lab of real OpenSSH hosts on 127.0.0.1, for demos and integration tests.

Each host is one `/usr/sbin/sshd -D` in its own mount and UTS namespace: it has its own hostname, a private
copy of /etc (its own users and host keys) and private /home, /root, /opt, /usr/local, /run, /tmp, /var/tmp
and /mnt/nfs, all directories under DIR/hosts/<name>/; the rest of the machine is shared. The lab writes
an Ansible inventory and its host-key pins, so that the tool talks to the lab as to any fleet.

Modules: `control` (Lab: the lab's record and commands), `host_tree` (a host's private filesystem),
`processes` (its sshd and namespaces), `namespace` (the program run inside them), `outputs` (inventory,
pins, ssh command line), `tools` (what the machine must have).
"""

from provision.lab.control import HostStatus, Lab
from provision.lab.processes import SSHD_RELOAD_COMMAND
from provision.lab.tools import require_prerequisites

__all__ = ["SSHD_RELOAD_COMMAND", "HostStatus", "Lab", "require_prerequisites"]
