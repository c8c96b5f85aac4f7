namespace PrefPipe.Trainer.Data;

/// <summary>Where a run is in its data: epoch and the next batch within it. Stored in checkpoints for exact resume.</summary>
/// <param name="Epoch">0-based epoch.</param>
/// <param name="Batch">Index of the next batch in that epoch's order.</param>
public sealed record DataPosition(int Epoch, int Batch);

/// <summary>
/// Batches of similar length in a seeded random order: examples are shuffled, grouped into windows of 50 batches,
/// sorted by length inside each window, cut into batches, and the batches shuffled. Padding waste is small, order is
/// random across lengths, and the order of epoch e depends only on (seed, e), so a resumed run sees the same batches.
/// </summary>
public sealed class LengthBucketSampler
{
    private const int WindowBatches = 50;
    private readonly IReadOnlyList<int> _lengths;
    private readonly int _batchSize;
    private readonly long _seed;

    /// <param name="lengths">Length of each example (tokens).</param>
    /// <param name="batchSize">Examples per batch; the last batch of an epoch may be smaller.</param>
    /// <param name="seed">Run seed.</param>
    public LengthBucketSampler(IReadOnlyList<int> lengths, int batchSize, long seed)
    {
        ArgumentNullException.ThrowIfNull(lengths);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        _lengths = lengths;
        _batchSize = batchSize;
        _seed = seed;
    }

    /// <summary>Batches per epoch.</summary>
    public int BatchesPerEpoch => (_lengths.Count + _batchSize - 1) / _batchSize;

    /// <summary>The batches (example indices) of one epoch, in training order.</summary>
    public IReadOnlyList<int[]> Epoch(int epoch)
    {
        var rng = new Random(SeedFor(_seed, epoch)); // seeded System.Random is stable across runs and machines
        var order = Enumerable.Range(0, _lengths.Count).ToArray();
        rng.Shuffle(order);
        var batches = new List<int[]>();
        int window = _batchSize * WindowBatches;
        for (int start = 0; start < order.Length; start += window)
        {
            var sorted = order.Skip(start).Take(window).OrderByDescending(i => _lengths[i]).ThenBy(i => i).ToArray();
            for (int b = 0; b < sorted.Length; b += _batchSize)
                batches.Add(sorted.Skip(b).Take(_batchSize).ToArray());
        }
        var shuffled = batches.ToArray();
        rng.Shuffle(shuffled);
        return shuffled;
    }

    /// <summary>SplitMix64 of (seed, epoch) folded to an int: deterministic, unlike HashCode (randomised per process).</summary>
    private static int SeedFor(long seed, int epoch)
    {
        ulong z = unchecked((ulong)seed + 0x9E3779B97F4A7C15UL * (ulong)(epoch + 1));
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        return unchecked((int)(z ^ (z >> 32)));
    }
}
