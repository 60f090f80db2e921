"""Pod networking through CNI plugins (issue 4).

The agent depends only on ``podling.network.interface`` (NetworkPlugin, PodNetworkInfo,
PortMapping, PodIPs, NetworkError); ``cni.CniNetwork`` is the real implementation,
``fake.FakeNetwork`` the one for unit tests.
"""
