using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace PrefPipe.Artifacts.Sharding;

/// <summary>
/// One shard of a stage's input: <see cref="Index"/> of <see cref="Count"/>. A prompt belongs to shard
/// <c>Of(prompt_id, Count)</c>: the first 8 bytes of SHA-256 over the UTF-8 bytes of the prompt id, read as a big-endian
/// unsigned 64-bit integer, modulo <see cref="Count"/>. The hash does not depend on the process, machine, runtime or
/// .NET version (unlike <c>string.GetHashCode</c>), so every worker assigns every prompt to the same shard.
/// </summary>
/// <param name="Index">0-based shard index, below <paramref name="Count"/>.</param>
/// <param name="Count">Number of shards, 1 to <see cref="MaxCount"/>.</param>
public readonly record struct Shard(int Index, int Count)
{
    /// <summary>The most shards a stage can be split into.</summary>
    public const int MaxCount = 4096;

    /// <summary>The shard <paramref name="promptId"/> belongs to when the input is split into <paramref name="count"/> shards.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="count"/> is not 1 to <see cref="MaxCount"/>.</exception>
    public static int Of(string promptId, int count)
    {
        ArgumentNullException.ThrowIfNull(promptId);
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, MaxCount);
        int max = Encoding.UTF8.GetMaxByteCount(promptId.Length);
        Span<byte> utf8 = max <= 512 ? stackalloc byte[max] : new byte[max];
        int n = Encoding.UTF8.GetBytes(promptId, utf8);
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(utf8[..n], hash);
        return (int)(BinaryPrimitives.ReadUInt64BigEndian(hash) % (ulong)count);
    }

    /// <summary>Whether <paramref name="promptId"/> belongs to this shard.</summary>
    public bool Contains(string promptId) => Of(promptId, Count) == Index;

    /// <summary>Parses <c>i/N</c> (e.g. <c>3/8</c>).</summary>
    /// <exception cref="FormatException">Not <c>i/N</c> with 0 ≤ i &lt; N ≤ <see cref="MaxCount"/>; the message says what was expected.</exception>
    public static Shard Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string[] parts = text.Split('/');
        if (parts.Length == 2 &&
            int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int i) &&
            int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int n) &&
            n is >= 1 and <= MaxCount && i < n)
            return new Shard(i, n);
        throw new FormatException($"shard '{text}' is not valid: expected i/N with 0 <= i < N <= {MaxCount}, e.g. 0/4");
    }

    /// <summary>Folder of this shard's files under the folder of all shards: <c>{root}/shard-{i:D4}</c>.</summary>
    public string Folder(string root) => string.Create(CultureInfo.InvariantCulture, $"{root}/shard-{Index:D4}");

    /// <inheritdoc />
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Index}/{Count}");
}
