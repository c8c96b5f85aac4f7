using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;

namespace PrefPipe.Artifacts.Tests.Rows;

public sealed class RowRoundTripTests
{
    private readonly LocalArtifactStore _store = new(Directory.CreateTempSubdirectory("prefpipe-rows-").FullName);

    private async Task RoundTrip<T>(IReadOnlyList<T> rows) where T : class, new()
    {
        var info = await ParquetArtifacts.WriteAsync(_store, $"a/{typeof(T).Name}.parquet", rows);
        var back = await ParquetArtifacts.ReadAllAsync<T>(_store, info.Path);

        Assert.Equal(rows.Count, info.Rows);
        Assert.Equal(rows.Count, back.Count);
        Assert.Matches("^[0-9a-f]{64}$", info.Sha256);
        for (int i = 0; i < rows.Count; i++) Assert.Equivalent(rows[i], back[i], strict: true);
    }

    [Fact]
    public Task PromptRow_WithTextAndConversation_RoundTrips() => RoundTrip<PromptRow>(
    [
        new() { PromptId = "p-1", Prompt = "Review of Driftwood:", SourceRow = 0, Extra = "{\"id\":\"train-0000\"}" },
        new() { PromptId = "p-2", Messages = [new() { Role = "system", Content = "Be brief." }, new() { Role = "user", Content = "Hi ☕" }], SourceRow = 1 },
    ]);

    [Fact]
    public Task CandidateRow_RoundTrips() => RoundTrip<CandidateRow>(
    [
        new() { PromptId = "p-1", Prompt = "x", CandidateIndex = 3, Response = "A joy.", TokenCount = 4, FinishReason = "eos", Seed = long.MaxValue, LogprobSum = -3.25, PromptInputIds = [5, 6], ResponseInputIds = [7, 1] },
        new() { PromptId = "p-1", Prompt = "x", CandidateIndex = 4, Response = "Dull.", TokenCount = 2, FinishReason = "stop", Seed = 9, LogprobSum = null, PromptInputIds = [5, 6] },
    ]);

    [Fact]
    public Task PreferenceRow_RoundTrips() => RoundTrip<PreferenceRow>(
        [new() { PromptId = "p", Prompt = "x", Chosen = "good", Rejected = "bad", ScoreChosen = 1.5, ScoreRejected = -0.5, RewardGap = 2, JudgeAgrees = true, Method = "ipr:reward", ChosenIndex = 1, RejectedIndex = 0 }]);

    [Fact]
    public Task ConversationalPreferenceRow_RoundTrips() => RoundTrip<ConversationalPreferenceRow>(
    [
        new()
        {
            PromptId = "c", Prompt = [new() { Role = "system", Content = "Be brief." }, new() { Role = "user", Content = "Hi ☕" }],
            Chosen = [new() { Role = "assistant", Content = "Hello." }], Rejected = [new() { Role = "assistant", Content = "Go away." }],
            ScoreChosen = 1.5, ScoreRejected = -0.5, RewardGap = 2, JudgeAgrees = true, Method = "ipr:reward", ChosenIndex = 1, RejectedIndex = 0,
            PromptInputIds = [2, 5, 6], ChosenInputIds = [7, 1], RejectedInputIds = [8, 1],
        },
    ]);

    [Fact]
    public Task OtherRows_RoundTrip() => Task.WhenAll(
        RoundTrip<ComparisonRow>([new() { PromptId = "p", A = 0, B = 1, Order = "ab", Verdict = "b", Judge = "reward", LatencyMs = 0.25 }]),
        RoundTrip<ScoredCandidateRow>([new() { PromptId = "p", CandidateIndex = 0, Reward = 0.5 }, new() { PromptId = "p", CandidateIndex = 1, Reason = "empty" }]),
        RoundTrip<RejectRow>([new() { Stage = "ingest", Source = "prompts.jsonl", Row = 7, Reason = "prompt is empty", Raw = "{}" }]),
        RoundTrip<ReferenceLogProbRow>([new() { PromptId = "p", ChosenLogps = -10, RejectedLogps = -12, ChosenTokens = 5, RejectedTokens = 6, Dispersion = 0.4 }]),
        RoundTrip<MetricRow>([new() { Stage = "dpo", Step = 10, Name = "rewards/margins", Value = 0.3 }]),
        RoundTrip<EvaluationRow>([new() { PromptId = "p", Policy = "final", SampleIndex = 0, Response = "r", Reward = 1, Kl = 0.2 }]));

    [Fact]
    public async Task WriteAsync_VersionedRowType_ReportsItsSchemaVersion()
    {
        var candidates = await ParquetArtifacts.WriteAsync(_store, "v/candidates.parquet", [new CandidateRow { PromptId = "p" }]);
        var metrics = await ParquetArtifacts.WriteAsync(_store, "v/metrics.parquet", [new MetricRow { Stage = "dpo" }]);

        Assert.Equal(CandidateRow.SchemaVersion, candidates.SchemaVersion);
        Assert.Equal(MetricRow.SchemaVersion, metrics.SchemaVersion);
    }

    [Fact]
    public async Task WriteAsync_TypeWithoutSchemaVersion_ReportsZero()
    {
        var info = await ParquetArtifacts.WriteAsync(_store, "v/turns.parquet", [new ChatTurnRow { Role = "user", Content = "hi" }]);

        Assert.Equal(0, info.SchemaVersion);
    }

    [Fact]
    public async Task Write_ManyRowGroups_ReadsBackInOrder()
    {
        var rows = Enumerable.Range(0, 2500).Select(i => new MetricRow { Stage = "dpo", Step = i, Name = "loss", Value = i * 0.5 }).ToList();

        var info = await ParquetArtifacts.WriteAsync(_store, "m/metrics.parquet", ToAsync(rows), rowGroupSize: 1000);
        var back = await ParquetArtifacts.ReadAllAsync<MetricRow>(_store, info.Path);

        Assert.Equal(2500, info.Rows);
        Assert.Equal(rows.Select(r => r.Step), back.Select(r => r.Step));
    }

    [Fact]
    public async Task Read_NotParquet_NamesTheFile()
    {
        string temp = Path.GetTempFileName();
        await File.WriteAllTextAsync(temp, "not parquet at all");
        await _store.CommitAsync("bad/file.parquet", temp);

        var ex = await Assert.ThrowsAsync<InvalidDataException>(async () => await ParquetArtifacts.ReadAllAsync<MetricRow>(_store, "bad/file.parquet"));

        Assert.Contains("bad/file.parquet", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Read_CorruptFooter_IsInvalidDataNamingTheFile()
    {
        string temp = Path.GetTempFileName();
        byte[] bytes = [.. "PAR1"u8, .. Enumerable.Repeat((byte)0xAB, 64), .. BitConverter.GetBytes(40), .. "PAR1"u8];
        await File.WriteAllBytesAsync(temp, bytes);
        await _store.CommitAsync("bad/corrupt.parquet", temp);

        var ex = await Assert.ThrowsAsync<InvalidDataException>(async () => await ParquetArtifacts.ReadAllAsync<MetricRow>(_store, "bad/corrupt.parquet"));

        Assert.Contains("bad/corrupt.parquet", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("../escape.parquet")]
    [InlineData("/etc/passwd")]
    [InlineData("a//b")]
    [InlineData("a\\b")]
    [InlineData("c:/x")]
    public void Paths_ThatCouldEscapeTheStore_AreRefused(string path) =>
        Assert.Throws<ArgumentException>(() => ArtifactPath.Validate(path));

    [Fact]
    public async Task TryCreate_SecondCallerLoses()
    {
        Assert.True(await _store.TryCreateAsync("claims/run-1", "a"u8.ToArray()));
        Assert.False(await _store.TryCreateAsync("claims/run-1", "b"u8.ToArray()));
        await using var s = await _store.OpenReadAsync("claims/run-1");
        Assert.Equal('a', (char)s.ReadByte());
    }

    private static async IAsyncEnumerable<T> ToAsync<T>(IEnumerable<T> rows)
    {
        foreach (var r in rows) yield return r;
        await Task.CompletedTask;
    }
}
