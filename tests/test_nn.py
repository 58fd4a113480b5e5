import torch

from dgae.nn.blocks import AttentionBlock, ResBlock, num_groups, resize_map, timestep_embedding


def test_group_counts_never_degenerate_to_instance_norm():
    assert [num_groups(c) for c in (3, 8, 32, 64, 128, 512)] == [1, 2, 8, 16, 32, 32]
    # a brightness offset survives a narrow block: GroupNorm over >= 4 channels keeps the
    # per-channel differences that one-channel groups (InstanceNorm) would erase
    block = ResBlock(8, 8)
    x = torch.randn(1, 8, 6, 6)
    assert not torch.allclose(
        block.norm1(x + torch.arange(8.0)[None, :, None, None]), block.norm1(x)
    )


def test_timestep_embedding_shape_and_range():
    emb = timestep_embedding(torch.tensor([0.0, 0.5, 1.0]), 9)
    assert emb.shape == (3, 9) and emb.abs().max() <= 1
    assert torch.equal(emb[0, :4], torch.ones(4))  # cos(0) = 1


def test_zero_initialised_branches_start_as_identity():
    x = torch.randn(2, 8, 4, 4)
    assert torch.equal(ResBlock(8, 8, emb_channels=4, zero_init=True)(x, torch.randn(2, 4)), x)
    assert torch.equal(AttentionBlock(8, head_channels=4, zero_init=True)(x), x)


def test_resize_map_enlarges_by_nearest_and_shrinks_by_area():
    z = torch.arange(4.0).reshape(1, 1, 2, 2)
    assert torch.equal(resize_map(z, (4, 4))[0, 0, :2, :2], torch.zeros(2, 2))
    assert torch.equal(resize_map(z, (1, 1)), torch.tensor([[[[1.5]]]]))


def test_post_norm_injection_keeps_a_global_conditioning_shift():
    # A conditioning projection that is the same for every channel of a norm group, shifted by a
    # constant over the image (z's global colour), is erased by GroupNorm when added before it:
    # the defect behind DGAE's colour shifts. Added after the norm, it reaches the output.
    torch.manual_seed(0)
    x, emb = torch.randn(2, 8, 6, 6), torch.randn(2, 16)
    cond = torch.randn(2, 1, 6, 6)
    for after, changes in ((False, False), (True, True)):
        block = ResBlock(8, 8, emb_channels=16, cond_channels=1, cond_after_norm=after)
        with torch.no_grad():
            block.cond.weight.fill_(1.0)  # every channel (so every group) gets the same map
        a, b = block(x, emb, cond), block(x, emb, cond + 0.7)
        assert (not torch.allclose(a, b, atol=1e-5)) == changes
