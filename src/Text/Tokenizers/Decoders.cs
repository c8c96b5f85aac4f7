using System.Globalization;
using System.Text;

namespace PrefPipe.Text.Tokenizers;

/// <summary>A tokenizer.json decoder: turns token strings back into text, as HF's <c>decode_chain</c>.</summary>
internal abstract class Decoder
{
    public abstract List<string> DecodeChain(List<string> tokens);

    public static Decoder? FromJson(JsonCursor? node)
    {
        if (node is null) return null;
        var n = node.Value;
        string type = n.TypeName();
        return type switch
        {
            "Sequence" => new SequenceDecoder(n.Required("decoders").Items().Select(x => FromJson(x)!).ToArray()),
            "ByteLevel" => new ByteLevelDecoder(),
            "Replace" => new ReplaceDecoder(Pattern.FromJson(n.Required("pattern")), n.Required("content").String()),
            "ByteFallback" => new ByteFallbackDecoder(),
            "Fuse" => new FuseDecoder(),
            "Strip" => StripDecoder.FromJson(n),
            "Metaspace" => MetaspaceDecoder.FromJson(n),
            "BPEDecoder" => new BpeSuffixDecoder(n.OptionalString("suffix") ?? "</w>"),
            "WordPiece" => new WordPieceDecoder(n.OptionalString("prefix") ?? "##", n.OptionalBool("cleanup", true)),
            _ => throw new NotSupportedException(
                $"{n.File}: '{n.Path}.type' is \"{type}\"; supported decoders: Sequence, ByteLevel, Replace, ByteFallback, " +
                "Fuse, Strip, Metaspace, BPEDecoder, WordPiece."),
        };
    }
}

internal sealed class SequenceDecoder(Decoder[] decoders) : Decoder
{
    public override List<string> DecodeChain(List<string> tokens)
    {
        foreach (var d in decoders) tokens = d.DecodeChain(tokens);
        return tokens;
    }
}

/// <summary>Maps the byte-level stand-in characters back to bytes; tokens with other characters pass as their UTF-8.</summary>
internal sealed class ByteLevelDecoder : Decoder
{
    public override List<string> DecodeChain(List<string> tokens)
    {
        var bytes = new List<byte>();
        foreach (string token in tokens)
        {
            bool allMapped = true;
            foreach (char c in token)
            {
                if (c >= ByteLevelAlphabet.CharToByte.Length || ByteLevelAlphabet.CharToByte[c] < 0)
                {
                    allMapped = false;
                    break;
                }
            }
            if (allMapped)
                foreach (char c in token) bytes.Add((byte)ByteLevelAlphabet.CharToByte[c]);
            else
                bytes.AddRange(Encoding.UTF8.GetBytes(token));
        }
        return [Encoding.UTF8.GetString(bytes.ToArray())];
    }
}

internal sealed class ReplaceDecoder(Pattern pattern, string content) : Decoder
{
    public override List<string> DecodeChain(List<string> tokens) => tokens.Select(t => pattern.Replace(t, content)).ToList();
}

/// <summary>Runs of <c>&lt;0xXX&gt;</c> tokens become the UTF-8 text they spell, or one U+FFFD per byte if invalid.</summary>
internal sealed class ByteFallbackDecoder : Decoder
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public override List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        var pending = new List<byte>();
        foreach (string token in tokens)
        {
            if (token.Length == 6 && token.StartsWith("<0x", StringComparison.Ordinal) && token[5] == '>'
                && byte.TryParse(token.AsSpan(3, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out byte b))
            {
                pending.Add(b);
                continue;
            }
            Flush(pending, result);
            result.Add(token);
        }
        Flush(pending, result);
        return result;
    }

    private static void Flush(List<byte> pending, List<string> result)
    {
        if (pending.Count == 0) return;
        try
        {
            result.Add(StrictUtf8.GetString(pending.ToArray()));
        }
        catch (DecoderFallbackException)
        {
            for (int i = 0; i < pending.Count; i++) result.Add("\uFFFD");
        }
        pending.Clear();
    }
}

internal sealed class FuseDecoder : Decoder
{
    public override List<string> DecodeChain(List<string> tokens) => [string.Concat(tokens)];
}

/// <summary>Removes up to <c>start</c> leading and <c>stop</c> trailing occurrences of a character from each token.</summary>
internal sealed class StripDecoder(Rune content, int start, int stop) : Decoder
{
    public static StripDecoder FromJson(JsonCursor n)
    {
        var contentNode = n.Required("content");
        string content = contentNode.String();
        if (!Rune.TryGetRuneAt(content, 0, out var rune) || rune.Utf16SequenceLength != content.Length)
            throw contentNode.Error("must be a single character");
        return new StripDecoder(rune, n.OptionalInt("start", 0), n.OptionalInt("stop", 0));
    }

    public override List<string> DecodeChain(List<string> tokens) => tokens.Select(Strip).ToList();

    private string Strip(string token)
    {
        var runes = token.EnumerateRunes().ToList();
        int startCut = 0;
        for (int i = 0; i < Math.Min(start, runes.Count) && runes[i] == content; i++) startCut = i + 1;
        int stopCut = runes.Count;
        for (int i = 0; i < stop && runes.Count - i - 1 >= 0; i++)
        {
            int index = runes.Count - i - 1;
            if (runes[index] != content) break;
            stopCut = index;
        }
        if (stopCut < startCut) return "";
        var sb = new StringBuilder();
        for (int i = startCut; i < stopCut; i++) sb.Append(runes[i].ToString());
        return sb.ToString();
    }
}

/// <summary>HF <c>Metaspace</c> decoder: "▁" becomes a space, except in the first token when a prefix was prepended.</summary>
internal sealed class MetaspaceDecoder(char replacement, bool dropInFirstToken) : Decoder
{
    public static MetaspaceDecoder FromJson(JsonCursor n)
    {
        var (replacement, scheme) = MetaspacePreTokenizer.ReadReplacementAndScheme(n);
        return new MetaspaceDecoder(replacement, scheme != "never");
    }

    public override List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        for (int i = 0; i < tokens.Count; i++)
        {
            var sb = new StringBuilder(tokens[i].Length);
            foreach (char c in tokens[i])
            {
                if (c != replacement) sb.Append(c);
                else if (!(i == 0 && dropInFirstToken)) sb.Append(' ');
            }
            result.Add(sb.ToString());
        }
        return result;
    }
}

/// <summary>HF <c>BPEDecoder</c>: the end-of-word suffix becomes a space (nothing after the last token).</summary>
internal sealed class BpeSuffixDecoder(string suffix) : Decoder
{
    public override List<string> DecodeChain(List<string> tokens) =>
        tokens.Select((t, i) => t.Replace(suffix, i == tokens.Count - 1 ? "" : " ", StringComparison.Ordinal)).ToList();
}

/// <summary>
/// HF <c>WordPiece</c> decoder (decoders/wordpiece.rs): every token but the first loses its continuing-subword prefix or
/// gains a leading space; with <c>cleanup</c>, each token then has the tokenization artifacts undone (" ." → ".",
/// " n't" → "n't", " do not" → " don't", …).
/// </summary>
internal sealed class WordPieceDecoder(string prefix, bool cleanup) : Decoder
{
    public override List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        for (int i = 0; i < tokens.Count; i++)
        {
            string token = tokens[i];
            if (i != 0) token = token.StartsWith(prefix, StringComparison.Ordinal) ? token[prefix.Length..] : " " + token;
            result.Add(cleanup ? Cleanup(token) : token);
        }
        return result;
    }

    /// <summary>HF's <c>wordpiece::cleanup</c>, the same replacements in the same order.</summary>
    internal static string Cleanup(string s) => s
        .Replace(" .", ".", StringComparison.Ordinal)
        .Replace(" ?", "?", StringComparison.Ordinal)
        .Replace(" !", "!", StringComparison.Ordinal)
        .Replace(" ,", ",", StringComparison.Ordinal)
        .Replace(" ' ", "'", StringComparison.Ordinal)
        .Replace(" n't", "n't", StringComparison.Ordinal)
        .Replace(" 'm", "'m", StringComparison.Ordinal)
        .Replace(" do not", " don't", StringComparison.Ordinal)
        .Replace(" 's", "'s", StringComparison.Ordinal)
        .Replace(" 've", "'ve", StringComparison.Ordinal)
        .Replace(" 're", "'re", StringComparison.Ordinal);
}
