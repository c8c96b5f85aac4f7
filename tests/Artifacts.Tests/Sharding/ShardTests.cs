using PrefPipe.Artifacts.Sharding;

namespace PrefPipe.Artifacts.Tests.Sharding;

public sealed class ShardTests
{
    // Reference values: Python `int.from_bytes(hashlib.sha256(id.encode()).digest()[:8], "big") % n`.
    [Theory]
    [InlineData("p-000001", 4, 3)]
    [InlineData("p-000003", 4, 1)]
    [InlineData("prompt-ü-42", 7, 2)]
    [InlineData("", 1000, 652)]
    [InlineData("row-17", 16, 10)]
    public void Of_KnownIds_MatchTheDocumentedHash(string id, int count, int expected) =>
        Assert.Equal(expected, Shard.Of(id, count));

    [Fact]
    public void Of_ManyIds_SpreadsEvenlyAndEveryIdHasOneShard()
    {
        var counts = new int[8];
        for (int i = 0; i < 8000; i++) counts[Shard.Of($"id-{i}", 8)]++;
        Assert.All(counts, c => Assert.InRange(c, 850, 1150));
        Assert.Equal(8000, counts.Sum());
    }

    [Theory]
    [InlineData("0/4", 0, 4)]
    [InlineData("3/4", 3, 4)]
    public void Parse_ValidText_ReturnsTheShard(string text, int index, int count) =>
        Assert.Equal(new Shard(index, count), Shard.Parse(text));

    [Theory]
    [InlineData("4/4")]
    [InlineData("-1/4")]
    [InlineData("1/0")]
    [InlineData("1")]
    [InlineData("a/b")]
    public void Parse_InvalidText_ThrowsNamingTheExpectedForm(string text)
    {
        var ex = Assert.Throws<FormatException>(() => Shard.Parse(text));
        Assert.Contains("expected i/N", ex.Message, StringComparison.Ordinal);
    }
}
