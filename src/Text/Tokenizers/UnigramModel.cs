using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;

namespace PrefPipe.Text.Tokenizers;

/// <summary>
/// The HF <c>Unigram</c> model (SentencePiece unigram: DeBERTa-v3, XLM-R, T5, ALBERT): the segmentation of a word whose
/// pieces' scores sum highest (Viterbi). A character no piece starts with is unknown (score: the lowest piece score
/// minus 10), consecutive unknowns fuse into one; with <c>byte_fallback</c> an unknown span becomes its UTF-8 bytes as
/// <c>&lt;0xXX&gt;</c> pieces when all of them exist.
/// </summary>
/// <remarks>
/// As <c>Unigram::encode_optimized</c> and <c>tokenize</c> in models/unigram/model.rs of the Rust <c>tokenizers</c>
/// library, ties included: positions are visited left to right and, from each, pieces shortest first; a later candidate
/// replaces the best path to a position only when its score is strictly higher. Scores add as f64, in the same order.
/// </remarks>
internal sealed class UnigramModel : TokenizerModel
{
    private const double UnkPenalty = 10.0;
    private const int MaxCachedWordLength = 256;
    private const int CacheCapacity = 100_000;

    private readonly string[] _pieces;
    private readonly double[] _scores;
    private readonly Dictionary<string, int> _vocab;
    private readonly int? _unkId;
    private readonly bool _byteFallback;
    private readonly double _unkScore;
    private readonly string _missingUnkMessage;
    // A trie over UTF-16 units: (node << 16 | char) → child node; the id of the piece ending at a node, or -1.
    private readonly Dictionary<long, int> _children = [];
    private readonly List<int> _pieceAt = [-1];
    private readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);

    private UnigramModel(string[] pieces, double[] scores, int? unkId, bool byteFallback, string missingUnkMessage)
    {
        _pieces = pieces;
        _scores = scores;
        _unkId = unkId;
        _byteFallback = byteFallback;
        _missingUnkMessage = missingUnkMessage;
        _vocab = new Dictionary<string, int>(pieces.Length, StringComparer.Ordinal);
        double minScore = double.PositiveInfinity;
        for (int id = 0; id < pieces.Length; id++)
        {
            _vocab[pieces[id]] = id; // a piece listed twice maps to its last id, as HF's insert into token_to_ids
            if (scores[id] < minScore) minScore = scores[id];
        }
        _unkScore = minScore - UnkPenalty;
        foreach (var (piece, id) in _vocab)
        {
            int node = 0;
            foreach (char c in piece)
            {
                long key = ((long)node << 16) | c;
                if (!_children.TryGetValue(key, out int child))
                {
                    child = _pieceAt.Count;
                    _pieceAt.Add(-1);
                    _children[key] = child;
                }
                node = child;
            }
            if (node != 0) _pieceAt[node] = id;
        }
    }

    /// <inheritdoc />
    public override int MaxId => _pieces.Length - 1;

    /// <inheritdoc />
    public override int Count => _pieces.Length;

    /// <inheritdoc />
    public override int? TokenToId(string token) => _vocab.TryGetValue(token, out int id) ? id : null;

    /// <inheritdoc />
    public override string? IdToToken(int id) => (uint)id < (uint)_pieces.Length ? _pieces[id] : null;

    /// <summary>Reads <c>model</c> of a tokenizer.json whose type is Unigram: <c>vocab</c> [[piece, score], …], <c>unk_id</c>, <c>byte_fallback</c>.</summary>
    public static UnigramModel FromJson(JsonCursor model)
    {
        var vocabNode = model.Required("vocab");
        var pieces = new List<string>();
        var scores = new List<double>();
        foreach (var entry in vocabNode.Items())
        {
            var pair = entry.Items().ToArray();
            if (pair.Length != 2 || pair[1].Kind != JsonValueKind.Number) throw entry.Error("must be a pair [piece, score]");
            pieces.Add(pair[0].String());
            scores.Add(pair[1].Element.GetDouble());
        }
        int? unkId = null;
        if (model.Optional("unk_id") is { } unkNode)
        {
            int id = unkNode.Int();
            if (id < 0) throw unkNode.Error("must be a non-negative id");
            if (id >= pieces.Count) throw unkNode.Error($"is beyond model.vocab ({pieces.Count} pieces)");
            unkId = id;
        }
        string missing = $"{model.File}: '{model.Path}.unk_id' is null, and a character is covered by no piece " +
            "(HF fails the same way: \"Encountered an unknown token but `unk_id` is missing\").";
        return new UnigramModel([.. pieces], [.. scores], unkId, model.OptionalBool("byte_fallback", false), missing);
    }

    /// <inheritdoc />
    public override void Tokenize(string word, List<int> output)
    {
        if (word.Length == 0) return;
        if (word.Length <= MaxCachedWordLength && _cache.TryGetValue(word, out var cached))
        {
            output.AddRange(cached);
            return;
        }
        var ids = new List<int>();
        foreach (string piece in Encode(word)) AddPiece(piece, ids);
        int[] result = [.. ids];
        if (word.Length <= MaxCachedWordLength && _cache.Count < CacheCapacity) _cache.TryAdd(word, result);
        output.AddRange(result);
    }

    /// <summary>HF's <c>tokenize</c>: a piece's id, else its bytes (byte fallback, all or none), else the unknown id.</summary>
    private void AddPiece(string piece, List<int> ids)
    {
        if (_vocab.TryGetValue(piece, out int id))
        {
            ids.Add(id);
            return;
        }
        if (_byteFallback)
        {
            byte[] bytes = Encoding.UTF8.GetBytes(piece);
            var byteIds = new int[bytes.Length];
            bool all = true;
            for (int i = 0; i < bytes.Length && all; i++)
                all = _vocab.TryGetValue(BpeModel.ByteToken(bytes[i]), out byteIds[i]);
            if (all)
            {
                ids.AddRange(byteIds);
                return;
            }
        }
        ids.Add(_unkId ?? throw new InvalidDataException(_missingUnkMessage));
    }

    /// <summary>HF's <c>encode_optimized</c>: the best path's pieces, consecutive unknowns fused.</summary>
    private List<string> Encode(string s)
    {
        int n = s.Length;
        var bestScore = new double[n + 1];
        var startsAt = new int[n + 1];
        var bestId = new int[n + 1];
        Array.Fill(startsAt, -1);
        int start = 0;
        while (start < n)
        {
            double scoreHere = bestScore[start];
            int runeLength = char.IsHighSurrogate(s[start]) && start + 1 < n && char.IsLowSurrogate(s[start + 1]) ? 2 : 1;
            bool hasSingle = false;
            int node = 0;
            for (int end = start; end < n; end++)
            {
                if (!_children.TryGetValue(((long)node << 16) | s[end], out node)) break;
                int id = _pieceAt[node];
                if (id < 0) continue;
                int keyPos = end + 1;
                double candidate = _scores[id] + scoreHere;
                if (startsAt[keyPos] < 0 || candidate > bestScore[keyPos])
                {
                    bestScore[keyPos] = candidate;
                    startsAt[keyPos] = start;
                    bestId[keyPos] = id;
                }
                if (keyPos - start == runeLength) hasSingle = true;
            }
            if (!hasSingle)
            {
                int keyPos = start + runeLength;
                double candidate = _unkScore + scoreHere;
                if (startsAt[keyPos] < 0 || candidate > bestScore[keyPos])
                {
                    bestScore[keyPos] = candidate;
                    startsAt[keyPos] = start;
                    bestId[keyPos] = _unkId ?? throw new InvalidDataException(_missingUnkMessage);
                }
            }
            start += runeLength;
        }

        var results = new List<string>();
        int unkEnd = -1; // end of the run of unknowns being fused, or -1
        int at = n;
        while (at > 0)
        {
            int from = startsAt[at];
            if (bestId[at] == _unkId)
            {
                if (unkEnd < 0) unkEnd = at;
            }
            else
            {
                if (unkEnd >= 0)
                {
                    results.Add(s[at..unkEnd]);
                    unkEnd = -1;
                }
                results.Add(s[from..at]);
            }
            at = from;
        }
        if (unkEnd >= 0) results.Add(s[0..unkEnd]);
        results.Reverse();
        return results;
    }
}
