using System.Text;

namespace PrefPipe.Text.Tokenizers;

/// <summary>
/// The HF <c>WordPiece</c> model (BERT, DistilBERT): each word is cut greedily into the longest vocabulary entries from
/// the left, every piece after the first looked up with the <c>continuing_subword_prefix</c> ("##"). A word with a part
/// no entry covers, or longer than <c>max_input_chars_per_word</c> characters, becomes the single unknown token.
/// </summary>
/// <remarks>As <c>models/wordpiece/mod.rs</c> of the Rust <c>tokenizers</c> library; lengths count Unicode scalar values
/// (Rust <c>chars</c>), as there.</remarks>
internal sealed class WordPieceModel : TokenizerModel
{
    private readonly Dictionary<string, int> _vocab;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _vocabBySpan;
    private readonly string?[] _idToToken;
    private readonly int? _unkId;
    private readonly string _prefix;
    private readonly int _maxInputCharsPerWord;
    private readonly string _missingUnkMessage;

    private WordPieceModel(Dictionary<string, int> vocab, int? unkId, string prefix, int maxInputCharsPerWord, string missingUnkMessage)
    {
        _vocab = vocab;
        _vocabBySpan = vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        _unkId = unkId;
        _prefix = prefix;
        _maxInputCharsPerWord = maxInputCharsPerWord;
        _missingUnkMessage = missingUnkMessage;
        _idToToken = TokensById(vocab);
    }

    /// <inheritdoc />
    public override int MaxId => _idToToken.Length - 1;

    /// <inheritdoc />
    public override int Count => _vocab.Count;

    /// <inheritdoc />
    public override int? TokenToId(string token) => _vocab.TryGetValue(token, out int id) ? id : null;

    /// <inheritdoc />
    public override string? IdToToken(int id) => (uint)id < (uint)_idToToken.Length ? _idToToken[id] : null;

    /// <summary>Reads <c>model</c> of a tokenizer.json whose type is WordPiece (defaults as HF's <c>WordPieceBuilder</c>).</summary>
    public static WordPieceModel FromJson(JsonCursor model)
    {
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (token, idNode) in model.Required("vocab").Properties())
        {
            int id = idNode.Int();
            if (id < 0) throw idNode.Error("must be a non-negative id");
            vocab[token] = id;
        }
        string unk = model.OptionalString("unk_token") ?? "[UNK]";
        string prefix = model.OptionalString("continuing_subword_prefix") ?? "##";
        int maxChars = model.OptionalInt("max_input_chars_per_word", 100);
        if (maxChars < 0) throw model.Required("max_input_chars_per_word").Error("must be a non-negative count");
        // HF fails only when a word needs the unknown token; so do we, naming the key.
        string missing = $"{model.File}: '{model.Path}.unk_token' is \"{unk}\", which is not in model.vocab, and a word " +
            "needs the unknown token (HF fails the same way: \"Missing [UNK] token from the vocabulary\").";
        return new WordPieceModel(vocab, vocab.TryGetValue(unk, out int unkId) ? unkId : null, prefix, maxChars, missing);
    }

    /// <inheritdoc />
    public override void Tokenize(string word, List<int> output)
    {
        if (word.Length == 0) return;
        if (CountScalars(word) > _maxInputCharsPerWord)
        {
            output.Add(UnkId());
            return;
        }
        int mark = output.Count;
        // The prefixed rest of the word, so "##" + word[start..end] is a slice without a new string per try.
        char[]? prefixed = null;
        int start = 0;
        while (start < word.Length)
        {
            int end = word.Length;
            int found = -1;
            if (start > 0)
            {
                prefixed ??= new char[_prefix.Length + word.Length];
                _prefix.CopyTo(prefixed);
                word.AsSpan(start).CopyTo(prefixed.AsSpan(_prefix.Length));
            }
            while (start < end)
            {
                bool hit;
                int id;
                if (start == 0)
                {
                    hit = _vocabBySpan.TryGetValue(word.AsSpan(0, end), out id);
                }
                else
                {
                    hit = _vocabBySpan.TryGetValue(prefixed!.AsSpan(0, _prefix.Length + end - start), out id);
                }
                if (hit)
                {
                    found = id;
                    break;
                }
                end -= end - start >= 2 && char.IsLowSurrogate(word[end - 1]) && char.IsHighSurrogate(word[end - 2]) ? 2 : 1;
            }
            if (found < 0)
            {
                output.RemoveRange(mark, output.Count - mark);
                output.Add(UnkId());
                return;
            }
            output.Add(found);
            start = end;
        }
    }

    private int UnkId() => _unkId ?? throw new InvalidDataException(_missingUnkMessage);

    private static int CountScalars(string s)
    {
        int n = 0;
        foreach (var _ in s.EnumerateRunes()) n++;
        return n;
    }
}
