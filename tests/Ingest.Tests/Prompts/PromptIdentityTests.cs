using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using PrefPipe.Ingest.Prompts;

namespace PrefPipe.Ingest.Tests.Prompts;

public sealed class PromptIdentityTests
{
    [Theory]
    [InlineData("  Review of  Driftwood:\n", "Review of Driftwood:")]
    [InlineData("ﬁlm\u00A0noir", "film noir")]        // NFKC folds the ligature and the no-break space
    [InlineData("Tabs\tand\r\nnewlines", "Tabs and newlines")]
    public void Normalize_FoldsCompatibilityFormsAndWhitespaceButKeepsCase(string input, string expected) =>
        Assert.Equal(expected, PromptIdentity.Normalize(input));

    [Fact]
    public void IdFor_SameNormalizedTextSameId_DifferentTextDifferentId()
    {
        string a = PromptIdentity.IdFor(PromptIdentity.Normalize("Review of Driftwood:"));
        string b = PromptIdentity.IdFor(PromptIdentity.Normalize(" Review of   Driftwood: "));
        string c = PromptIdentity.IdFor(PromptIdentity.Normalize("review of driftwood:"));

        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
        Assert.Matches("^p-[0-9a-f]{16}$", a);
        // SHA-256("Review of Driftwood:") starts with these 16 hex digits (sha256sum of the UTF-8 bytes).
        Assert.Equal("p-" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData("Review of Driftwood:"u8))[..16], a);
    }

    [Fact]
    public void IdFor_Conversation_DependsOnRolesAndContents()
    {
        string user = PromptIdentity.IdFor([("user", "Hi there")]);
        string system = PromptIdentity.IdFor([("system", "Hi there")]);
        string split = PromptIdentity.IdFor([("user", "Hi"), ("user", "there")]);

        Assert.Equal(3, new[] { user, system, split }.Distinct().Count());
        Assert.Equal(user, PromptIdentity.IdFor([("user", "  Hi   there ")]));
    }

    [Fact]
    public void CandidateSeed_IsStablePerPromptAndIndexAndDiffersAcrossThem()
    {
        long s00 = PromptIdentity.CandidateSeed(1234, "p-0123456789abcdef", 0);

        Assert.Equal(s00, PromptIdentity.CandidateSeed(1234, "p-0123456789abcdef", 0));
        Assert.NotEqual(s00, PromptIdentity.CandidateSeed(1234, "p-0123456789abcdef", 1));
        Assert.NotEqual(s00, PromptIdentity.CandidateSeed(1235, "p-0123456789abcdef", 0));
        Assert.True(s00 >= 0);
    }

    [Fact]
    public void CandidateSeed_FitsInJsonNumbersAndKeepsTheSamplersLow32Bits()
    {
        foreach (int i in Enumerable.Range(0, 500))
        {
            long seed = PromptIdentity.CandidateSeed(42, $"p-{i}", i % 4);
            byte[] sha = SHA256.HashData(Encoding.UTF8.GetBytes(FormattableString.Invariant($"42\u001fp-{i}\u001f{i % 4}")));

            // A JSON reader (pandas, JavaScript) parses it as a double without losing a digit.
            Assert.InRange(seed, 0, (1L << 53) - 1);
            Assert.Equal(seed, (long)(double)seed);
            // torch's CPU generator keeps the low 32 bits of its seed: the same bits as the unmasked 63-bit seed had, so
            // masking changed no candidate's text.
            Assert.Equal(BinaryPrimitives.ReadUInt32LittleEndian(sha), (uint)seed);
        }
    }

    [Fact]
    public void CandidateSeed_MaskedTo53Bits_DrawsWhatThe63BitSeedDrew()
    {
        // The sample a candidate's seed draws, before (63 bits) and after (53 bits) the mask.
        foreach (int i in Enumerable.Range(0, 20))
        {
            byte[] sha = SHA256.HashData(Encoding.UTF8.GetBytes(FormattableString.Invariant($"42\u001fp-{i}\u001f0")));
            long unmasked = BinaryPrimitives.ReadInt64LittleEndian(sha) & long.MaxValue;
            using var before = new TorchSharp.torch.Generator((ulong)unmasked, TorchSharp.torch.CPU);
            using var after = new TorchSharp.torch.Generator((ulong)PromptIdentity.CandidateSeed(42, $"p-{i}", 0), TorchSharp.torch.CPU);

            using var a = TorchSharp.torch.rand(64, TorchSharp.torch.float32, TorchSharp.torch.CPU, generator: before);
            using var b = TorchSharp.torch.rand(64, TorchSharp.torch.float32, TorchSharp.torch.CPU, generator: after);
            Assert.Equal(a.data<float>().ToArray(), b.data<float>().ToArray());
        }
    }
}
