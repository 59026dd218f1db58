"""The train sampler: epoch-seeded order, per-sample augmentation seeds, mid-epoch resume, rank split."""

import torch

from wsol_lightning.data.sampling import ResumableDataLoader, ResumableRandomSampler, sample_seed


class Items(torch.utils.data.Dataset):
    def __len__(self):
        return 10

    def __getitem__(self, key):
        return torch.tensor(key)


def epoch_pairs(sampler, epoch):
    sampler.set_epoch(epoch)
    return list(sampler)


def test_order_depends_only_on_seed_and_epoch():
    a, b = ResumableRandomSampler(Items(), seed=3), ResumableRandomSampler(Items(), seed=3)
    assert epoch_pairs(a, 0) == epoch_pairs(b, 0)
    assert epoch_pairs(a, 1) == epoch_pairs(b, 1)
    assert [i for i, _ in epoch_pairs(a, 0)] != [i for i, _ in epoch_pairs(a, 1)]
    assert sorted(i for i, _ in epoch_pairs(a, 2)) == list(range(10))
    assert epoch_pairs(ResumableRandomSampler(Items(), seed=4), 0) != epoch_pairs(a, 0)


def test_augmentation_seed_is_per_sample_and_epoch():
    pairs = epoch_pairs(ResumableRandomSampler(Items(), seed=3), 5)
    assert all(seed == sample_seed(3, 5, index) for index, seed in pairs)
    assert len({seed for _, seed in pairs}) == 10
    assert sample_seed(3, 5, 1) != sample_seed(3, 6, 1)


def test_resume_skips_exactly_the_trained_batches_once():
    full = ResumableDataLoader(Items(), seed=1, batch_size=3)
    full.sampler.set_epoch(2)
    batches = [b.tolist() for b in full]
    resumed = ResumableDataLoader(Items(), seed=1, batch_size=3, progress=lambda: 0)
    resumed.load_state_dict({"epoch": 2, "batches_done": 2, "seed": 1})
    assert len(resumed) == len(full) == 4
    assert [b.tolist() for b in resumed] == batches[2:]
    assert [b.tolist() for b in resumed] == batches  # the skip applies once


def test_state_dict_reports_epoch_and_progress():
    loader = ResumableDataLoader(Items(), seed=1, batch_size=3, progress=lambda: 2)
    loader.sampler.set_epoch(4)
    assert loader.state_dict() == {"epoch": 4, "batches_done": 2, "seed": 1}


def test_ranks_split_the_padded_permutation_without_overlap():
    class FakeRank(ResumableRandomSampler):
        def __init__(self, rank):
            torch.utils.data.DistributedSampler.__init__(self, Items(), num_replicas=3, rank=rank, shuffle=True,
                                                         seed=0)
            self.skip = 0

    per_rank = [[i for i, _ in FakeRank(r)] for r in range(3)]
    assert all(len(p) == 4 for p in per_rank)  # 10 padded to 12
    assert set(sum(per_rank, [])) == set(range(10))
