using System.Text.Json;

namespace PrefPipe.Text.Tokenizers;

/// <summary>
/// A Hugging Face <c>tokenizer.json</c> — a BPE model (byte-level as in GPT-2, Llama 3, Qwen2/2.5/3, GPT-4o-style, or
/// SentencePiece-style with byte fallback as in Llama 2, Mistral), a WordPiece model (BERT, DistilBERT) or a Unigram
/// model (DeBERTa-v3, XLM-R, T5) — encoding and decoding as the <c>tokenizers</c> library does: added tokens first, then
/// normalizer, pre-tokenizer, model, and the post-processor when special tokens are asked for.
/// </summary>
/// <remarks>
/// Thread-safe once loaded. Decoding follows the <c>tokenizers</c> library (no <c>clean_up_tokenization_spaces</c>).
/// </remarks>
public sealed class HfTokenizer : ITextTokenizer
{
    private readonly TokenizerModel _model;
    private readonly Normalizer? _normalizer;
    private readonly PreTokenizer? _preTokenizer;
    private readonly PostProcessor? _postProcessor;
    private readonly Decoder? _decoder;
    private readonly AddedTokenMatcher _rawMatcher;
    private readonly AddedTokenMatcher _normalizedMatcher;
    private readonly Dictionary<string, int> _addedByContent;
    private readonly Dictionary<int, AddedToken> _addedById;
    private readonly HashSet<string> _specialContents;
    private readonly HashSet<int> _specialIds;

    private HfTokenizer(string path, TokenizerModel model, Normalizer? normalizer, PreTokenizer? preTokenizer,
        PostProcessor? postProcessor, Decoder? decoder, IReadOnlyList<AddedToken> addedTokens)
    {
        TokenizerPath = path;
        _model = model;
        _normalizer = normalizer;
        _preTokenizer = preTokenizer;
        _postProcessor = postProcessor;
        _decoder = decoder;
        _addedByContent = new Dictionary<string, int>(StringComparer.Ordinal);
        _addedById = [];
        foreach (var t in addedTokens)
        {
            _addedByContent[t.Content] = t.Id;
            _addedById[t.Id] = t;
        }
        _specialContents = addedTokens.Where(t => t.Special).Select(t => t.Content).ToHashSet(StringComparer.Ordinal);
        _specialIds = addedTokens.Where(t => t.Special).Select(t => t.Id).ToHashSet();
        _rawMatcher = new AddedTokenMatcher(addedTokens.Where(t => !t.Normalized).Select(t => (t.Content, t)));
        _normalizedMatcher = new AddedTokenMatcher(addedTokens.Where(t => t.Normalized)
            .Select(t => (normalizer?.Normalize(t.Content) ?? t.Content, t)));
        VocabSize = Math.Max(model.MaxId, addedTokens.Count == 0 ? -1 : addedTokens.Max(t => t.Id)) + 1;
    }

    /// <summary>The tokenizer.json this was loaded from.</summary>
    public string TokenizerPath { get; }

    /// <inheritdoc />
    /// <remarks>The highest id plus one, so every id indexes an embedding row.</remarks>
    public int VocabSize { get; }

    /// <inheritdoc />
    public int? BosTokenId { get; private set; }

    /// <inheritdoc />
    public int? EosTokenId { get; private set; }

    /// <inheritdoc />
    public int? PadTokenId { get; private set; }

    /// <summary>
    /// Every id that ends generation: <see cref="EosTokenId"/> and the <c>eos_token_id</c> list of
    /// generation_config.json (Llama 3 instruct models stop at several).
    /// </summary>
    public IReadOnlyList<int> EosTokenIds { get; private set; } = [];

    /// <inheritdoc />
    public IReadOnlySet<int> SpecialTokenIds => _specialIds;

    /// <summary>
    /// Loads a tokenizer from a tokenizer.json file or a model folder holding one. Special token ids come from
    /// tokenizer_config.json beside it (<c>bos_token</c>, <c>eos_token</c>, <c>pad_token</c>); a key absent there falls back
    /// to generation_config.json, then config.json (<c>*_token_id</c>, the first id of a list).
    /// </summary>
    /// <exception cref="FileNotFoundException">No tokenizer.json at <paramref name="path"/>.</exception>
    /// <exception cref="InvalidDataException">The file is malformed; the message names the file and key.</exception>
    /// <exception cref="NotSupportedException">A model, normalizer, pre-tokenizer, post-processor or decoder type this
    /// implementation does not have; the message names the file and type.</exception>
    public static ITextTokenizer Load(string path) => LoadHf(path);

    /// <summary>As <see cref="Load"/>, typed.</summary>
    public static HfTokenizer LoadHf(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string file = Directory.Exists(path) ? Path.Combine(path, "tokenizer.json") : path;
        if (!File.Exists(file))
            throw new FileNotFoundException(Directory.Exists(path)
                ? $"{path}: no tokenizer.json in this model folder."
                : $"{path}: tokenizer file not found (expected a tokenizer.json or a model folder).", file);

        using var doc = ParseFile(file);
        var root = new JsonCursor(doc.RootElement, file, "$");
        if (root.Kind != JsonValueKind.Object) throw root.Error("must be a JSON object (a Hugging Face tokenizer.json)");

        var model = TokenizerModel.Create(root.Required("model"));
        var normalizer = Normalizer.FromJson(root.Optional("normalizer"));
        var added = AssignIds((root.Optional("added_tokens")?.Items() ?? []).Select(AddedToken.FromJson), model);
        var tokenizer = new HfTokenizer(file, model, normalizer, PreTokenizer.FromJson(root.Optional("pre_tokenizer")),
            PostProcessor.FromJson(root.Optional("post_processor")), Decoder.FromJson(root.Optional("decoder")), added);
        tokenizer.ResolveSpecialTokens(Path.GetDirectoryName(Path.GetFullPath(file))!);
        return tokenizer;
    }

    /// <inheritdoc />
    public IReadOnlyList<int> Encode(string text, bool addSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length / 3 + 4);
        var pieces = new List<Piece>();
        foreach (var segment in Segments(_rawMatcher, text))
        {
            if (segment.Token is { } raw)
            {
                ids.Add(raw.Id);
                continue;
            }
            string part = text[segment.Start..segment.End];
            bool atStart = segment.Start == 0;
            string normalized = _normalizer?.Normalize(part) ?? part;
            if (normalized.Length == 0) continue;
            foreach (var inner in Segments(_normalizedMatcher, normalized))
            {
                if (inner.Token is { } token)
                {
                    ids.Add(token.Id);
                    continue;
                }
                var piece = new Piece(normalized[inner.Start..inner.End], atStart && inner.Start == 0);
                pieces.Clear();
                if (_preTokenizer is null) pieces.Add(piece);
                else _preTokenizer.PreTokenize(piece, pieces);
                foreach (var word in pieces) _model.Tokenize(word.Text, ids);
            }
        }
        return addSpecialTokens && _postProcessor is not null ? _postProcessor.Process(ids) : ids;
    }

    /// <inheritdoc />
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var tokens = new List<string>();
        foreach (int id in ids)
        {
            string? token = IdToToken(id);
            if (token is null) continue;
            if (skipSpecialTokens && _specialContents.Contains(token)) continue;
            tokens.Add(token);
        }
        return _decoder is null ? string.Join(' ', tokens) : string.Concat(_decoder.DecodeChain(tokens));
    }

    /// <inheritdoc />
    public int? TokenToId(string token)
    {
        ArgumentNullException.ThrowIfNull(token);
        return _addedByContent.TryGetValue(token, out int id) ? id : _model.TokenToId(token);
    }

    /// <inheritdoc />
    public string? IdToToken(int id) => _addedById.TryGetValue(id, out var added) ? added.Content : _model.IdToToken(id);

    /// <summary>
    /// The ids HF gives the added tokens when it loads a tokenizer.json (it only warns about the file's <c>id</c>): a
    /// content already added keeps its id, a content in model.vocab takes that id, any other the next id from the vocab's
    /// size on. An empty content is dropped. Well-formed files agree with their <c>id</c> fields.
    /// </summary>
    private static List<AddedToken> AssignIds(IEnumerable<AddedToken> tokens, TokenizerModel model)
    {
        var byContent = new Dictionary<string, int>(StringComparer.Ordinal);
        var byId = new Dictionary<int, AddedToken>();
        int nextId = model.Count;
        foreach (var token in tokens)
        {
            if (token.Content.Length == 0) continue;
            if (!byContent.TryGetValue(token.Content, out int id)) id = model.TokenToId(token.Content) ?? nextId++;
            byContent[token.Content] = id;
            byId[id] = token with { Id = id };
        }
        return [.. byId.Values];
    }

    private static List<Segment> Segments(AddedTokenMatcher matcher, string text) =>
        matcher.IsEmpty ? [new Segment(0, text.Length, null)] : matcher.Split(text);

    private static JsonDocument ParseFile(string file)
    {
        try
        {
            using var stream = File.OpenRead(file);
            return JsonDocument.Parse(stream, new JsonDocumentOptions { MaxDepth = 256 });
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{file}: not valid JSON (line {e.LineNumber + 1}): {e.Message}", e);
        }
    }

    private void ResolveSpecialTokens(string folder)
    {
        using var tokenizerConfig = TryParse(Path.Combine(folder, "tokenizer_config.json"));
        using var generationConfig = TryParse(Path.Combine(folder, "generation_config.json"));
        using var modelConfig = TryParse(Path.Combine(folder, "config.json"));

        int? Resolve(string name)
        {
            if (tokenizerConfig is not null)
            {
                var root = new JsonCursor(tokenizerConfig.RootElement, Path.Combine(folder, "tokenizer_config.json"), "$");
                if (root.Kind == JsonValueKind.Object && root.Has(name))
                {
                    if (root.Optional(name) is not { } value) return null; // explicitly null: the tokenizer has none
                    string content = value.Kind == JsonValueKind.Object ? value.Required("content").String() : value.String();
                    return TokenToId(content) ?? throw value.Error("names a token that is in neither model.vocab nor added_tokens of " + TokenizerPath);
                }
            }
            foreach (var (config, fileName) in new[] { (generationConfig, "generation_config.json"), (modelConfig, "config.json") })
            {
                if (config is null) continue;
                var root = new JsonCursor(config.RootElement, Path.Combine(folder, fileName), "$");
                if (root.Kind != JsonValueKind.Object || root.Optional(name + "_id") is not { } idNode) continue;
                var ids = ReadIds(idNode);
                if (ids.Count > 0) return ids[0];
            }
            return null;
        }

        BosTokenId = Resolve("bos_token");
        EosTokenId = Resolve("eos_token");
        PadTokenId = Resolve("pad_token");

        var eos = new List<int>();
        if (EosTokenId is { } e) eos.Add(e);
        if (generationConfig is not null)
        {
            var root = new JsonCursor(generationConfig.RootElement, Path.Combine(folder, "generation_config.json"), "$");
            if (root.Kind == JsonValueKind.Object && root.Optional("eos_token_id") is { } idNode)
                foreach (int id in ReadIds(idNode))
                    if (!eos.Contains(id)) eos.Add(id);
        }
        EosTokenIds = eos;
    }

    private static List<int> ReadIds(JsonCursor node) =>
        node.Kind == JsonValueKind.Array ? node.Items().Select(i => i.Int()).ToList() : [node.Int()];

    private static JsonDocument? TryParse(string file) => File.Exists(file) ? ParseFile(file) : null;
}
