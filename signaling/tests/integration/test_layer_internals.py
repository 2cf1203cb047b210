"""What ``Delivery.repair`` relies on inside channels_redis's pub/sub layer.

Fails loudly when a channels_redis upgrade renames or removes the shard attributes that
the repair after a Redis outage uses (``signaling/service/delivery.py``).
"""

from __future__ import annotations

from channels_redis.pubsub import RedisPubSubChannelLayer


async def test_pubsub_layer_shards_keep_the_attributes_the_repair_uses() -> None:
    # given
    layer = RedisPubSubChannelLayer(hosts=["redis://127.0.0.1:6379/0"])
    # when
    shards = layer._shards
    # then
    assert len(shards) == 1
    shard = shards[0]
    assert shard._pubsub is None  # created on first use
    assert shard._subscribed_to == set()
    assert hasattr(shard._lock, "acquire")
