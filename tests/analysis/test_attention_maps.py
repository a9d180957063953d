import torch

from daaf.analysis.attention_maps import draw_attention_grid
from daaf.utils.visualization import colour_scale_panel

from reference_attention import grad_cam

PAD = 4  # the grid padding of daaf.utils.visualization.image_grid


def test_grad_cam_sums_the_maps_of_every_embedding_component():
    torch.manual_seed(0)
    activations = torch.randn(2, 3, 4, 5, requires_grad=True)
    weights = torch.randn(3, 6)
    targets = torch.einsum("bchw,cd->bd", activations.tanh(), weights)
    expected = torch.zeros(2, 4, 5)
    for d in range(6):
        (grad,) = torch.autograd.grad(targets[:, d].sum(), activations, retain_graph=True)
        expected += torch.einsum("bc,bchw->bhw", grad.mean(dim=(2, 3)), activations.detach()).relu()
    torch.testing.assert_close(grad_cam(targets, activations, chunk=4), expected)


def test_attention_grid_ends_each_row_with_the_colour_key():
    images = torch.zeros(2, 3, 160, 80, dtype=torch.uint8)  # 160 high or more: drawn at their size
    grid = draw_attention_grid(images, {"map": torch.rand(2, 10, 5)})
    assert grid.shape == (2 * (160 + PAD) + PAD, 3 * (80 + PAD) + PAD, 3)  # input, map, colour key
    for row in range(2):
        top = PAD + row * (160 + PAD)
        key = grid[top : top + 160, PAD + 2 * (80 + PAD) :][:, :80]
        assert (key == colour_scale_panel(160, 80)).all()
