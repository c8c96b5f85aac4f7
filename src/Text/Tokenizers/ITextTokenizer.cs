namespace PrefPipe.Text.Tokenizers;

/// <summary>A Hugging Face tokenizer: ids identical to the <c>tokenizers</c> library for the same tokenizer.json.</summary>
public interface ITextTokenizer
{
    /// <summary>Number of ids, added tokens included.</summary>
    int VocabSize { get; }

    /// <summary>Beginning-of-sequence id, or null when the tokenizer has none.</summary>
    int? BosTokenId { get; }

    /// <summary>End-of-sequence id (tokenizer_config.json eos_token), or null.</summary>
    int? EosTokenId { get; }

    /// <summary>Padding id (tokenizer_config.json pad_token), or null.</summary>
    int? PadTokenId { get; }

    /// <summary>Ids of special (added, special=true) tokens.</summary>
    IReadOnlySet<int> SpecialTokenIds { get; }

    /// <summary>Encodes text; <paramref name="addSpecialTokens"/> applies the post-processor (BOS/EOS) as HF does by default.</summary>
    IReadOnlyList<int> Encode(string text, bool addSpecialTokens = true);

    /// <summary>Decodes ids to text, optionally dropping special tokens.</summary>
    string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false);

    /// <summary>The id of a token string (vocabulary or added token), or null.</summary>
    int? TokenToId(string token);

    /// <summary>The token string of an id, or null when out of range.</summary>
    string? IdToToken(int id);
}
