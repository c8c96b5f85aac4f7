using System.Text;
using PrefPipe.Text.Tokenizers;

namespace PrefPipe.Text;

/// <summary>
/// Unicode normalization that works under InvariantGlobalization (where <see cref="string.Normalize()"/> is a no-op for
/// non-ASCII text): the same embedded tables the tokenizers use.
/// </summary>
public static class TextNormalization
{
    /// <summary>Returns <paramref name="text"/> in the given normalization form (NFC, NFD, NFKC, NFKD).</summary>
    public static string Normalize(string text, NormalizationForm form)
    {
        ArgumentNullException.ThrowIfNull(text);
        return UnicodeNormalization.Normalize(text, form);
    }
}
