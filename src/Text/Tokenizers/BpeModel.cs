using System.Collections.Concurrent;
using System.Globalization;
using System.Text;

namespace PrefPipe.Text.Tokenizers;

/// <summary>
/// The HF <c>BPE</c> model: a word's characters (or, with byte fallback, <c>&lt;0xXX&gt;</c> tokens for characters
/// outside the vocabulary) are merged pair by pair, lowest merge rank first and leftmost first on ties.
/// </summary>
/// <remarks>A <c>dropout</c> in the file is ignored: HF samples it at every encode (a training-time augmentation);
/// inference wants the deterministic segmentation, which is dropout 0.</remarks>
internal sealed class BpeModel : TokenizerModel
{
    private const int MaxCachedWordLength = 256;
    private const int CacheCapacity = 100_000;

    private readonly Dictionary<string, int> _vocab;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _vocabBySpan;
    private readonly string?[] _idToToken;
    private readonly Dictionary<long, (int Rank, int NewId)> _merges;
    private readonly int? _unkId;
    private readonly bool _fuseUnk;
    private readonly bool _byteFallback;
    private readonly bool _ignoreMerges;
    private readonly string? _prefix;
    private readonly string? _suffix;
    private readonly int[]? _byteIds;
    private readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);

    private BpeModel(Dictionary<string, int> vocab, Dictionary<long, (int, int)> merges, int? unkId, bool fuseUnk,
        bool byteFallback, bool ignoreMerges, string? prefix, string? suffix)
    {
        _vocab = vocab;
        _vocabBySpan = vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        _merges = merges;
        _unkId = unkId;
        _fuseUnk = fuseUnk;
        _byteFallback = byteFallback;
        _ignoreMerges = ignoreMerges;
        _prefix = prefix;
        _suffix = suffix;
        _idToToken = TokensById(vocab);
        if (byteFallback)
        {
            _byteIds = new int[256];
            for (int b = 0; b < 256; b++)
                _byteIds[b] = vocab.TryGetValue(ByteToken(b), out int id) ? id : -1;
        }
    }

    public override int MaxId => _idToToken.Length - 1;

    /// <inheritdoc />
    public override int Count => _vocab.Count;

    public override int? TokenToId(string token) => _vocab.TryGetValue(token, out int id) ? id : null;

    public override string? IdToToken(int id) => (uint)id < (uint)_idToToken.Length ? _idToToken[id] : null;

    public static string ByteToken(int b) => "<0x" + b.ToString("X2", CultureInfo.InvariantCulture) + ">";

    public static BpeModel FromJson(JsonCursor model)
    {
        var vocabNode = model.Required("vocab");
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (token, idNode) in vocabNode.Properties())
        {
            int id = idNode.Int();
            if (id < 0) throw idNode.Error("must be a non-negative id");
            vocab[token] = id;
        }

        string? prefix = model.OptionalString("continuing_subword_prefix");
        string? suffix = model.OptionalString("end_of_word_suffix");
        int prefixLength = prefix?.Length ?? 0;
        var merges = new Dictionary<long, (int, int)>();
        int rank = 0;
        foreach (var m in model.Optional("merges")?.Items() ?? [])
        {
            string left, right;
            if (m.Kind == System.Text.Json.JsonValueKind.String)
            {
                string line = m.String();
                // HF drops a merges.txt "#version" header line carried into the list (and does not count it as a rank).
                if (line.StartsWith("#version", StringComparison.Ordinal)) continue;
                string[] parts = line.Split(' ');
                if (parts.Length != 2) throw m.Error("must be two tokens separated by one space");
                (left, right) = (parts[0], parts[1]);
            }
            else
            {
                var pair = m.Items().ToArray();
                if (pair.Length != 2) throw m.Error("must be a pair [left, right]");
                (left, right) = (pair[0].String(), pair[1].String());
            }
            if (!vocab.TryGetValue(left, out int leftId)) throw m.Error($"names \"{left}\", which is not in model.vocab");
            if (!vocab.TryGetValue(right, out int rightId)) throw m.Error($"names \"{right}\", which is not in model.vocab");
            string merged = left + right[prefixLength..];
            if (!vocab.TryGetValue(merged, out int newId)) throw m.Error($"merges into \"{merged}\", which is not in model.vocab");
            // A pair listed twice takes its last rank, as HF's HashMap collect does.
            merges[Key(leftId, rightId)] = (rank, newId);
            rank++;
        }

        int? unkId = null;
        if (model.OptionalString("unk_token") is { } unk)
        {
            if (!vocab.TryGetValue(unk, out int id))
                throw new InvalidDataException($"{model.File}: '{model.Path}.unk_token' is \"{unk}\", which is not in model.vocab.");
            unkId = id;
        }
        return new BpeModel(vocab, merges, unkId, model.OptionalBool("fuse_unk", false), model.OptionalBool("byte_fallback", false),
            model.OptionalBool("ignore_merges", false), prefix, suffix);
    }

    /// <inheritdoc />
    public override void Tokenize(string word, List<int> output)
    {
        if (word.Length == 0) return;
        if (_ignoreMerges && _vocab.TryGetValue(word, out int whole))
        {
            output.Add(whole);
            return;
        }
        if (word.Length <= MaxCachedWordLength && _cache.TryGetValue(word, out var cached))
        {
            output.AddRange(cached);
            return;
        }
        int[] ids = Merge(word);
        if (word.Length <= MaxCachedWordLength && _cache.Count < CacheCapacity) _cache.TryAdd(word, ids);
        output.AddRange(ids);
    }

    private int[] Merge(string word)
    {
        var symbols = new List<int>(word.Length);
        int? pendingUnk = null;
        int i = 0;
        while (i < word.Length)
        {
            int length = char.IsHighSurrogate(word[i]) && i + 1 < word.Length && char.IsLowSurrogate(word[i + 1]) ? 2 : 1;
            bool first = i == 0;
            bool last = i + length == word.Length;
            ReadOnlySpan<char> ch = word.AsSpan(i, length);
            i += length;

            int id;
            bool found;
            string? decorated = null;
            if ((_prefix is null || first) && (_suffix is null || !last))
            {
                found = _vocabBySpan.TryGetValue(ch, out id);
            }
            else
            {
                decorated = (!first && _prefix is not null ? _prefix : "") + ch.ToString() + (last && _suffix is not null ? _suffix : "");
                found = _vocab.TryGetValue(decorated, out id);
            }
            if (found)
            {
                if (pendingUnk is { } u) { symbols.Add(u); pendingUnk = null; }
                symbols.Add(id);
                continue;
            }
            if (_byteFallback && TryAddBytes(decorated ?? ch.ToString(), symbols)) continue;
            if (_unkId is { } unkId)
            {
                if (pendingUnk is { } u && !_fuseUnk) symbols.Add(u);
                pendingUnk = unkId;
            }
        }
        if (pendingUnk is { } p) symbols.Add(p);
        return MergeAll(symbols);
    }

    /// <remarks>
    /// A pending (possibly fused) unknown stays pending across byte-fallback characters, as in HF's <c>merge_word</c>: it
    /// is emitted before the next character found in the vocabulary, or at the end of the word.
    /// </remarks>
    private bool TryAddBytes(string s, List<int> symbols)
    {
        Span<byte> bytes = stackalloc byte[Encoding.UTF8.GetMaxByteCount(s.Length)];
        int n = Encoding.UTF8.GetBytes(s, bytes);
        for (int b = 0; b < n; b++)
            if (_byteIds![bytes[b]] < 0) return false;
        for (int b = 0; b < n; b++) symbols.Add(_byteIds![bytes[b]]);
        return true;
    }

    private int[] MergeAll(List<int> symbols)
    {
        int n = symbols.Count;
        if (n < 2 || _merges.Count == 0) return [.. symbols];
        var ids = symbols.ToArray();
        var prev = new int[n];
        var next = new int[n];
        var removed = new bool[n];
        var queue = new PriorityQueue<int, long>();
        for (int k = 0; k < n; k++)
        {
            prev[k] = k - 1;
            next[k] = k + 1 < n ? k + 1 : -1;
            if (k + 1 < n && _merges.TryGetValue(Key(ids[k], ids[k + 1]), out var m)) queue.Enqueue(k, Priority(m.Rank, k));
        }
        int remaining = n;
        while (queue.TryDequeue(out int pos, out long priority))
        {
            if (removed[pos]) continue;
            int right = next[pos];
            if (right < 0) continue;
            if (!_merges.TryGetValue(Key(ids[pos], ids[right]), out var merge) || merge.Rank != (int)(priority >> 32)) continue;
            ids[pos] = merge.NewId;
            removed[right] = true;
            remaining--;
            next[pos] = next[right];
            if (next[pos] >= 0) prev[next[pos]] = pos;
            int left = prev[pos];
            if (left >= 0 && _merges.TryGetValue(Key(ids[left], ids[pos]), out var m1)) queue.Enqueue(left, Priority(m1.Rank, left));
            if (next[pos] >= 0 && _merges.TryGetValue(Key(ids[pos], ids[next[pos]]), out var m2)) queue.Enqueue(pos, Priority(m2.Rank, pos));
        }
        var result = new int[remaining];
        int r = 0;
        for (int k = 0; k >= 0; k = next[k]) result[r++] = ids[k];
        return result;
    }

    private static long Key(int left, int right) => ((long)left << 32) | (uint)right;

    private static long Priority(int rank, int pos) => ((long)rank << 32) | (uint)pos;
}
