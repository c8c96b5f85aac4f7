namespace PrefPipe.Text.Tokenizers;

/// <summary>
/// A tokenizer.json model: turns one pre-tokenized word into ids (HF's <c>Model::tokenize</c>) and maps tokens to ids.
/// </summary>
internal abstract class TokenizerModel
{
    /// <summary>The highest id in the vocabulary (-1 when empty).</summary>
    public abstract int MaxId { get; }

    /// <summary>The number of entries in model.vocab (HF's <c>get_vocab_size</c>).</summary>
    public abstract int Count { get; }

    public abstract int? TokenToId(string token);

    public abstract string? IdToToken(int id);

    /// <summary>Appends the ids of one pre-tokenized word.</summary>
    public abstract void Tokenize(string word, List<int> output);

    /// <summary>The inverse of a token → id vocabulary, indexed by id (null where the ids have a gap).</summary>
    protected static string?[] TokensById(Dictionary<string, int> vocab)
    {
        var tokens = new string?[vocab.Count == 0 ? 0 : vocab.Values.Max() + 1];
        foreach (var (token, id) in vocab) tokens[id] = token;
        return tokens;
    }

    /// <summary>
    /// Reads <c>model</c> by its <c>type</c>: BPE, WordPiece or Unigram. A file without a type (older tokenizers) is read
    /// as HF does for untagged models: BPE when it has merges, Unigram when its vocab is a list of [piece, score] pairs,
    /// else WordPiece.
    /// </summary>
    /// <exception cref="NotSupportedException">Another model type (WordLevel); the message names the file and type.</exception>
    public static TokenizerModel Create(JsonCursor model)
    {
        string type = model.OptionalString("type")
            ?? (model.Has("merges") ? "BPE"
                : model.Optional("vocab") is { Kind: System.Text.Json.JsonValueKind.Array } ? "Unigram"
                : model.Has("vocab") ? "WordPiece"
                : "(none)");
        return type switch
        {
            "BPE" => BpeModel.FromJson(model),
            "WordPiece" => WordPieceModel.FromJson(model),
            "Unigram" => UnigramModel.FromJson(model),
            _ => throw new NotSupportedException(
                $"{model.File}: model.type is \"{type}\"; supported models: BPE (byte-level as in GPT-2/Llama 3/Qwen, or " +
                "SentencePiece-style with byte_fallback as in Llama 2/Mistral), WordPiece (BERT, DistilBERT) and Unigram " +
                "(DeBERTa-v3, XLM-R, T5, ALBERT)."),
        };
    }
}
