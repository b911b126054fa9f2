"""What a user of the Docker SDK for Python does with dualstack.

Creates a dualstack network with an IPv4 and two IPv6 subnets through
IPAMConfig/IPAMPool, runs a container on it, prints what the SDK's inspect
says of the container's addresses and the container's own IPv6 addresses
(one line of JSON), and removes both. Arguments: DOCKER_HOST, the plugin,
the image, the network's and container's name, a label KEY=VALUE.
"""
import json
import sys

import docker

base_url, plugin, image, name, label = sys.argv[1:6]
key, value = label.split("=", 1)
client = docker.DockerClient(base_url=base_url, version="auto")
ipam = docker.types.IPAMConfig(
    driver=plugin,
    pool_configs=[
        docker.types.IPAMPool(subnet="198.18.50.0/24"),
        docker.types.IPAMPool(subnet="2001:db8:50::/64"),
        docker.types.IPAMPool(subnet="2001:db8:51::/64"),
    ],
)
network = client.networks.create(name, driver=plugin, ipam=ipam, enable_ipv6=True, labels={key: value})
container = None
try:
    container = client.containers.run(
        image, ["sleep", "3600"], name=name, network=name, detach=True, labels={key: value}
    )
    container.reload()
    settings = container.attrs["NetworkSettings"]["Networks"][name]
    code, out = container.exec_run(["ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global"])
    inside = [line.split()[3] for line in out.decode().splitlines() if code == 0 and len(line.split()) > 3]
    print(json.dumps({
        "ipv4": settings["IPAddress"],
        "ipv6": settings["GlobalIPv6Address"],
        "gateway": settings["Gateway"],
        "inside": inside,
    }))
finally:
    if container is not None:
        container.remove(force=True)
    network.remove()
