using static TorchSharp.torch;

namespace PrefPipe.Models.Decoders.Modules;

/// <summary>
/// Key/value cache for incremental decoding: preallocated [batch, kv_heads, capacity, head_dim] per layer, written in
/// place, so decoding allocates nothing per step. Owns its tensors (outside any dispose scope); dispose it.
/// </summary>
public sealed class KvCache : IDisposable
{
    private readonly Tensor[] _keys;
    private readonly Tensor[] _values;
    private Tensor? _stepIndex;
    private long _stepStart = -1;

    /// <summary>Allocates a cache for <paramref name="capacity"/> positions.</summary>
    public KvCache(DecoderConfig config, long batch, long capacity, ScalarType dtype, Device device)
    {
        ArgumentNullException.ThrowIfNull(config);
        Capacity = capacity;
        _keys = new Tensor[config.NumHiddenLayers];
        _values = new Tensor[config.NumHiddenLayers];
        for (int i = 0; i < _keys.Length; i++)
        {
            _keys[i] = zeros(new[] { batch, config.NumKeyValueHeads, capacity, config.HeadDim }, dtype, device).DetachFromDisposeScope();
            _values[i] = zeros(new[] { batch, config.NumKeyValueHeads, capacity, config.HeadDim }, dtype, device).DetachFromDisposeScope();
        }
    }

    /// <summary>Positions filled so far (the next token's absolute position).</summary>
    public long Length { get; private set; }

    /// <summary>Positions the cache can hold.</summary>
    public long Capacity { get; }

    /// <summary>Writes this step's keys/values for a layer and returns views of everything cached so far.</summary>
    internal (Tensor Keys, Tensor Values) Update(int layer, Tensor keys, Tensor values)
    {
        long t = keys.shape[2];
        if (Length + t > Capacity)
            throw new InvalidOperationException($"KV cache holds {Capacity} positions; {Length + t} needed.");
        if (_stepIndex is null || _stepStart != Length || _stepIndex.shape[0] != t)
        {
            // Positions written this step, made once per step and shared by every layer: [t] int64.
            _stepIndex?.Dispose();
            _stepIndex = arange(Length, Length + t, ScalarType.Int64, _keys[layer].device).DetachFromDisposeScope();
            _stepStart = Length;
        }
        _keys[layer].index_copy_(2, _stepIndex, keys);
        _values[layer].index_copy_(2, _stepIndex, values);
        return (_keys[layer].narrow(2, 0, Length + t), _values[layer].narrow(2, 0, Length + t));
    }

    /// <summary>Marks <paramref name="tokens"/> more positions as filled (after all layers ran).</summary>
    internal void Advance(long tokens) => Length += tokens;

    /// <summary>Forgets every position, so the next forward re-encodes from position 0 (longrope's switch to its long factors).</summary>
    internal void Reset() => Length = 0;

    /// <summary>Rows (sequences) the cache holds.</summary>
    public long Rows => _keys.Length == 0 ? 0 : _keys[0].shape[0];

    /// <summary>Sets the filled length (continuous batching places rows' positions itself).</summary>
    internal void SetLength(long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, Capacity);
        Length = length;
    }

    /// <summary>
    /// Writes the first <paramref name="count"/> positions of every row of <paramref name="source"/> into the rows
    /// <paramref name="rows"/> ([n] int64, one per source row) at positions <paramref name="at"/> … at + count − 1.
    /// </summary>
    internal void WriteRows(KvCache source, Tensor rows, long at, long count)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (at < 0 || at + count > Capacity || count > source.Capacity)
            throw new ArgumentOutOfRangeException(nameof(at), $"positions {at}…{at + count} do not fit a cache of {Capacity}");
        for (int i = 0; i < _keys.Length; i++)
        {
            using var scope = NewDisposeScope();
            _keys[i].narrow(2, at, count).index_copy_(0, rows, source._keys[i].narrow(2, 0, count));
            _values[i].narrow(2, at, count).index_copy_(0, rows, source._values[i].narrow(2, 0, count));
        }
    }

    /// <summary>Moves positions <paramref name="from"/> … from + count − 1 of every row to start at <paramref name="to"/> (ranges may overlap).</summary>
    internal void Move(long from, long count, long to)
    {
        if (from < 0 || to < 0 || from + count > Capacity || to + count > Capacity)
            throw new ArgumentOutOfRangeException(nameof(from), $"cannot move {count} positions from {from} to {to} in a cache of {Capacity}");
        if (count == 0 || from == to) return;
        for (int i = 0; i < _keys.Length; i++)
        {
            using var scope = NewDisposeScope();
            _keys[i].narrow(2, to, count).copy_(_keys[i].narrow(2, from, count).clone());
            _values[i].narrow(2, to, count).copy_(_values[i].narrow(2, from, count).clone());
        }
    }

    /// <summary>Keeps only the rows <paramref name="rows"/> ([n] int64), in that order; the others' memory is freed.</summary>
    internal void KeepRows(Tensor rows)
    {
        for (int i = 0; i < _keys.Length; i++)
        {
            var k = _keys[i].index_select(0, rows).DetachFromDisposeScope();   // [n, kv, capacity, d]
            var v = _values[i].index_select(0, rows).DetachFromDisposeScope();
            _keys[i].Dispose();
            _values[i].Dispose();
            _keys[i] = k;
            _values[i] = v;
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var t in _keys) t.Dispose();
        foreach (var t in _values) t.Dispose();
        _stepIndex?.Dispose();
    }
}
