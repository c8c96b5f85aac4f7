using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace PrefPipe.Text.Tokenizers;

/// <summary>
/// HF <c>Precompiled</c> normalizer: SentencePiece's own normalization rules (an NFKC-like table with SentencePiece's
/// additions) compiled into <c>precompiled_charsmap</c> — a little-endian u32 byte size of a darts-clone double-array
/// trie, the trie's u32 units, then a pool of NUL-terminated replacement strings the trie's values point into.
/// </summary>
/// <remarks>
/// As normalizers/precompiled.rs of the Rust <c>tokenizers</c> library with the <c>spm_precompiled</c> crate it uses,
/// quirks included: the text is walked by extended grapheme clusters; a cluster under 6 UTF-8 bytes is looked up whole,
/// and if the trie has a key that is a prefix of it, the shortest such key's replacement stands for the whole cluster;
/// otherwise each character is looked up on its own (shortest prefix key again) and kept when none matches. Grapheme
/// clusters come from .NET's UAX #29 implementation, HF's from the <c>unicode-segmentation</c> crate; the two may differ
/// for characters newer than either's Unicode version.
/// </remarks>
internal sealed class PrecompiledNormalizer : Normalizer
{
    private readonly uint[] _units;
    private readonly byte[] _pool;

    private PrecompiledNormalizer(uint[] units, byte[] pool)
    {
        _units = units;
        _pool = pool;
    }

    /// <summary>Reads <c>precompiled_charsmap</c> (base64), failing with the file and key when it cannot be parsed.</summary>
    public static PrecompiledNormalizer FromJson(JsonCursor n)
    {
        var node = n.Required("precompiled_charsmap");
        byte[] blob;
        try
        {
            blob = Convert.FromBase64String(node.String());
        }
        catch (FormatException e)
        {
            throw new InvalidDataException($"{node.File}: '{node.Path}' is not valid base64: {e.Message}", e);
        }
        if (blob.Length < 4) throw node.Error("must hold at least the 4-byte trie size (HF: \"Cannot parse precompiled_charsmap\")");
        uint trieBytes = BinaryPrimitives.ReadUInt32LittleEndian(blob);
        uint unitCount = trieBytes / 4;
        if (unitCount == 0 || 4 + (long)unitCount * 4 > blob.Length)
            throw node.Error($"declares a {trieBytes}-byte trie in a {blob.Length}-byte charsmap (HF: \"Cannot parse precompiled_charsmap\")");
        var units = new uint[unitCount];
        for (int i = 0; i < units.Length; i++) units[i] = BinaryPrimitives.ReadUInt32LittleEndian(blob.AsSpan(4 + i * 4));
        byte[] pool = blob[(4 + (int)unitCount * 4)..];
        try
        {
            _ = new UTF8Encoding(false, throwOnInvalidBytes: true).GetCharCount(pool);
        }
        catch (DecoderFallbackException e)
        {
            throw new InvalidDataException($"{node.File}: '{node.Path}': the replacement strings are not valid UTF-8 (HF refuses it too).", e);
        }
        return new PrecompiledNormalizer(units, pool);
    }

    public override string Normalize(string text)
    {
        if (text.Length == 0) return text;
        var sb = new StringBuilder(text.Length);
        Span<byte> buffer = stackalloc byte[64];
        var elements = StringInfo.GetTextElementEnumerator(text);
        while (elements.MoveNext())
        {
            string grapheme = elements.GetTextElement();
            int byteCount = Encoding.UTF8.GetByteCount(grapheme);
            if (byteCount < 6)
            {
                int written = Encoding.UTF8.GetBytes(grapheme, buffer);
                if (Transform(buffer[..written], sb)) continue;
            }
            foreach (var rune in grapheme.EnumerateRunes())
            {
                int written = rune.EncodeToUtf8(buffer);
                if (!Transform(buffer[..written], sb)) sb.Append(rune.ToString());
            }
        }
        return sb.ToString();
    }

    /// <summary><c>Precompiled::transform</c>: appends the replacement of the first (shortest) key that prefixes <paramref name="key"/>.</summary>
    private bool Transform(ReadOnlySpan<byte> key, StringBuilder output)
    {
        int value = FirstPrefixValue(key);
        if (value < 0) return false;
        int end = value;
        while (end < _pool.Length && _pool[end] != 0) end++;
        if (value > _pool.Length) return false;
        output.Append(Encoding.UTF8.GetString(_pool, value, end - value));
        return true;
    }

    /// <summary>darts-clone <c>commonPrefixSearch</c>, stopped at its first result: the value, or -1.</summary>
    private int FirstPrefixValue(ReadOnlySpan<byte> key)
    {
        long pos = 0;
        uint unit = _units[0];
        pos ^= Offset(unit);
        foreach (byte c in key)
        {
            if (c == 0) break;
            pos ^= c;
            if ((ulong)pos >= (ulong)_units.Length) return -1;
            unit = _units[pos];
            if ((unit & ((1u << 31) | 0xFF)) != c) return -1;
            pos ^= Offset(unit);
            if (((unit >> 8) & 1) == 1)
            {
                if ((ulong)pos >= (ulong)_units.Length) return -1;
                return (int)(_units[pos] & ((1u << 31) - 1));
            }
        }
        return -1;
    }

    private static long Offset(uint unit) => (long)(unit >> 10) << (int)((unit & (1u << 9)) >> 6);
}
