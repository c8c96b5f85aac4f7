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
}
