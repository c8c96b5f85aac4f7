using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using PrefPipe.Text;

namespace PrefPipe.Ingest.Prompts;

/// <summary>
/// Stable identities: a prompt's id is a hash of its normalised content, so the same prompt gets the same id in every
/// run and on every machine, duplicates are found by id, and candidate seeds derived from it reproduce.
/// </summary>
internal static partial class PromptIdentity
{
    /// <summary>NFKC, trimmed, runs of whitespace collapsed to one space; case is kept (it can change meaning).</summary>
    public static string Normalize(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return Whitespace().Replace(TextNormalization.Normalize(text, NormalizationForm.FormKC).Trim(), " ");
    }

    /// <summary>"p-" + 16 hex digits of SHA-256 over the normalised text (or the normalised role/content pairs).</summary>
    public static string IdFor(string normalizedText) => "p-" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(normalizedText)))[..16];

    /// <summary>The id of a conversation: roles and normalised contents, joined unambiguously.</summary>
    public static string IdFor(IEnumerable<(string Role, string Content)> messages) =>
        IdFor(string.Join("\u001e", messages.Select(m => m.Role + "\u001f" + Normalize(m.Content))));

    /// <summary>
    /// The sampling seed of candidate <paramref name="candidateIndex"/> of a prompt: the low 53 bits of the first 8 bytes
    /// of SHA-256(run seed, prompt id, index), so it does not depend on batch composition, order or machine.
    /// </summary>
    /// <remarks>
    /// 53 bits, so the <c>seed</c> column survives JSON (pandas' and JavaScript's readers parse numbers as doubles, exact
    /// up to 2^53). The sampler's generator (torch's mt19937) is seeded from the low 32 bits, which the mask keeps: the
    /// candidates are the ones the earlier 63-bit seeds drew.
    /// </remarks>
    public static long CandidateSeed(long runSeed, string promptId, int candidateIndex)
    {
        var bytes = SHA256.HashData(Encoding.UTF8.GetBytes(FormattableString.Invariant($"{runSeed}\u001f{promptId}\u001f{candidateIndex}")));
        return BinaryPrimitives.ReadInt64LittleEndian(bytes) & MaxJsonSafeInteger;
    }

    /// <summary>2^53 − 1: the largest integer a double, and so every JSON reader, holds exactly.</summary>
    internal const long MaxJsonSafeInteger = (1L << 53) - 1;

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();
}
