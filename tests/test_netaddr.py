"""Choosing the address to advertise when an agent binds every interface."""

from __future__ import annotations

import pytest

from consulpy.agent.netaddr import AddressDetectionError, interface_ipv4_addresses, private_ipv4


def test_the_one_private_address_is_chosen() -> None:
    assert private_ipv4(["127.0.0.1", "10.1.2.3", "8.8.8.8", "169.254.1.1"]) == "10.1.2.3"
    assert private_ipv4(["127.0.0.1", "100.64.0.7"]) == "100.64.0.7"
    assert private_ipv4(["192.168.1.5", "192.168.1.5"]) == "192.168.1.5"


@pytest.mark.parametrize(("addresses", "message"), [
    (["127.0.0.1", "8.8.8.8"], "No private IPv4 address found"),
    (["10.0.0.1", "172.16.0.1"], "Multiple private IPv4 addresses found. Please configure one with 'bind' "
                                 "and/or 'advertise'."),
])
def test_none_or_several_is_an_error(addresses: list[str], message: str) -> None:
    with pytest.raises(AddressDetectionError) as caught:
        private_ipv4(addresses)
    assert str(caught.value) == message


def test_this_host_lists_its_loopback() -> None:
    assert "127.0.0.1" in interface_ipv4_addresses()
