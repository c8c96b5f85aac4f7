using PrefPipe.Models.Decoders;
using PrefPipe.Models.Generation;
using static TorchSharp.torch;

namespace PrefPipe.Models.Tests.Decoders;

/// <summary>
/// Continuous batching (<see cref="TextGenerator.Generate(IReadOnlyList{GenerationRequest}, GenerationOptions, int, Action{int, GenerationResult}?, CancellationToken)"/>):
/// whatever joins, moves or leaves the batch, every request gets what it gets generated alone.
/// </summary>
public sealed class ContinuousBatchingTests
{
    private static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "fixtures", name);

    /// <summary>Prompts of 1–9 tokens in no particular order, each with its own seed.</summary>
    private static List<GenerationRequest> Requests(int count, int vocab) =>
        Enumerable.Range(0, count).Select(i => new GenerationRequest(
            Enumerable.Range(0, 1 + (i * 5 + 3) % 9).Select(t => 2 + (37 * i + 11 * t) % (vocab - 2)).ToList(), 1000 + 17 * i)).ToList();

    // demo: sampled with its EOS, so sequences end at different steps; tiny-mistral-sliding: a sliding window shorter
    // than the sequences (masking in cache positions after the window moves); tiny-gemma3: soft-capped eager attention.
    [Theory]
    [InlineData("demo/policy", 1, false)]
    [InlineData("demo/policy", 3, false)]
    [InlineData("demo/policy", 5, false)]
    [InlineData("demo/policy", 4, true)]
    [InlineData("tiny-mistral-sliding", 3, true)]
    [InlineData("tiny-gemma3", 2, true)]
    [InlineData("tiny-llama", 4, true)]
    public void Generate_WithFewerRowsThanRequests_EachEqualsItsRequestAlone(string fixture, int rows, bool greedy)
    {
        using var model = CausalLM.Load(Fixture(fixture), CPU);
        var generator = new TextGenerator(model, padTokenId: 1);
        // Sampled runs stop at the model's EOS (the demo policy ends most samples early); greedy ones at a token the
        // fixture's greedy continuations reach, or at the length.
        var options = new GenerationOptions { MaxNewTokens = 14, Greedy = greedy, Temperature = 1.0, TopK = 40 };
        var requests = Requests(13, model.Config.VocabSize);
        var alone = requests.Select(r => generator.Generate([r], options)[0]).ToList();
        if (greedy)
        {
            // An end-of-sequence id that half the greedy continuations contain, so rows end at different steps.
            int common = alone.SelectMany(a => a.NewIds.Skip(2)).GroupBy(t => t).OrderByDescending(g => g.Count()).ThenBy(g => g.Key).First().Key;
            options.EosTokenIds = [common];
            alone = [.. requests.Select(r => generator.Generate([r], options)[0])];
        }
        Assert.True(alone.Select(a => a.NewIds.Count).Distinct().Count() > 1, "the requests should end at different lengths");

        var finished = new List<(int Index, GenerationResult Result)>();
        var before = Snapshot(generator.Counters);
        var together = generator.Generate(requests, options, rows, (i, r) => finished.Add((i, r)));
        var after = Snapshot(generator.Counters);

        for (int i = 0; i < requests.Count; i++)
        {
            Assert.Equal(alone[i].NewIds, together[i].NewIds);
            Assert.Equal(alone[i].FinishReason, together[i].FinishReason);
            for (int t = 0; t < alone[i].Logprobs.Count; t++)
                Assert.True(Math.Abs(alone[i].Logprobs[t] - together[i].Logprobs[t]) <= 1e-4, $"request {i} token {t}: {alone[i].Logprobs[t]} vs {together[i].Logprobs[t]}");
        }
        // Every request reported once, with the result returned for it.
        Assert.Equal(Enumerable.Range(0, requests.Count), finished.Select(f => f.Index).Order());
        Assert.All(finished, f => Assert.Same(together[f.Index], f.Result));
        // Sequences joined while others decoded; rows never outnumbered the limit.
        if (rows > 1) Assert.True(after.Joined - before.Joined > 0, "no sequence joined a running batch");
        Assert.True(after.RowSteps - before.RowSteps <= (after.DecodingSteps - before.DecodingSteps) * rows);
        Assert.Equal(together.Sum(r => r.NewIds.Count) - requests.Count, after.DecodedTokens - before.DecodedTokens); // first tokens come from prefill
    }

    [Fact]
    public void Generate_LongRun_MovesTheWindowAndDropsIdleRows_AndStillEqualsAlone()
    {
        // 40 requests through 3 rows: the shared write position passes the cache's capacity many times over.
        using var model = CausalLM.Load(Fixture("demo/policy"), CPU);
        var generator = new TextGenerator(model, padTokenId: 1);
        var options = new GenerationOptions { MaxNewTokens = 10, Temperature = 1.0 };
        var requests = Requests(40, model.Config.VocabSize);

        var together = generator.Generate(requests, options, 3, null);
        var counters = generator.Counters;
        long moves = counters.WindowMoves, compactions = counters.Compactions;
        var alone = requests.Select(r => generator.Generate([r], options)[0]).ToList();

        Assert.True(moves > 0, "the cache window never moved");
        Assert.True(compactions > 0, "idle rows were never dropped");
        for (int i = 0; i < requests.Count; i++)
        {
            Assert.Equal(alone[i].NewIds, together[i].NewIds);
            for (int t = 0; t < alone[i].Logprobs.Count; t++) Assert.True(Math.Abs(alone[i].Logprobs[t] - together[i].Logprobs[t]) <= 1e-4);
        }
    }

    [Fact]
    public void Generate_AllInOneBatch_LeavesNoRowComputingAfterItEnds()
    {
        // No one waits: rows that end are dropped once a quarter of the batch is idle, so the work done stays close to
        // the tokens kept (a static batch would run every row to the longest sequence).
        using var model = CausalLM.Load(Fixture("demo/policy"), CPU);
        var generator = new TextGenerator(model, padTokenId: 1);
        var options = new GenerationOptions { MaxNewTokens = 40, Temperature = 1.0 };
        var requests = Requests(16, model.Config.VocabSize);

        var results = generator.Generate(requests, options);

        int longest = results.Max(r => r.NewIds.Count);
        long staticRowSteps = (long)requests.Count * (longest - 1);
        Assert.True(results.Min(r => r.NewIds.Count) < longest / 2, "the samples should differ in length for this test to mean anything");
        Assert.True(generator.Counters.Compactions > 0);
        Assert.True(generator.Counters.RowSteps < staticRowSteps, $"{generator.Counters.RowSteps} row-steps, a static batch {staticRowSteps}");
        Assert.True(generator.Counters.Utilisation >= 0.75, $"utilisation {generator.Counters.Utilisation:F3}");
    }

    [Fact]
    public void Generate_StopStrings_EndSequencesThatThenLeave()
    {
        using var model = CausalLM.Load(Fixture("demo/policy"), CPU);
        static string Decode(IReadOnlyList<int> ids) => string.Concat(ids.Select(i => (char)('a' + i % 26)));
        var generator = new TextGenerator(model, padTokenId: 1, Decode);
        var options = new GenerationOptions { MaxNewTokens = 12, Temperature = 1.0, EosTokenIds = [] };
        var requests = Requests(9, model.Config.VocabSize);
        // A stop string the unstopped samples contain past their start, so some sequences stop at different steps.
        var texts = requests.Select(r => generator.Generate([r], options)[0].Text!).ToList();
        string stop = texts.SelectMany(t => t.Skip(2).Distinct()).GroupBy(c => c).Where(g => g.Count() < texts.Count).OrderByDescending(g => g.Count()).ThenBy(g => g.Key).First().Key.ToString();
        options.StopStrings = [stop];

        var together = generator.Generate(requests, options, 2, null);
        var alone = requests.Select(r => generator.Generate([r], options)[0]).ToList();

        Assert.Contains(together, r => r.FinishReason == FinishReason.Stop);
        for (int i = 0; i < requests.Count; i++)
        {
            Assert.Equal(alone[i].NewIds, together[i].NewIds);
            Assert.Equal(alone[i].Text, together[i].Text);
            Assert.Equal(alone[i].FinishReason, together[i].FinishReason);
        }
    }

    private static (long DecodingSteps, long RowSteps, long DecodedTokens, long Joined) Snapshot(GenerationCounters c) =>
        (c.DecodingSteps, c.RowSteps, c.DecodedTokens, c.Joined);
}

/// <summary><see cref="BatchRows"/>: rows from memory, checked against what the engine really allocates.</summary>
public sealed class BatchRowsTests
{
    [Fact]
    public void BytesPerRow_CoversTheKvCacheTheEngineAllocates()
    {
        using var model = CausalLM.Load(Path.Combine(AppContext.BaseDirectory, "fixtures", "demo", "policy"), CPU);
        const int prompt = 24, maxNew = 40;
        // The engine's cache with joins: prompt + 2 × new positions per row.
        using var cache = new PrefPipe.Models.Decoders.Modules.KvCache(model.Config, 3, prompt + 2 * maxNew, model.DType, CPU);
        long kvPerRow = 2L * model.Config.NumHiddenLayers * model.Config.NumKeyValueHeads * model.Config.HeadDim * (prompt + 2 * maxNew) * 4;

        long perRow = BatchRows.BytesPerRow(model.Config, model.DType, prompt, maxNew);

        Assert.Equal(3, cache.Rows);
        Assert.True(perRow > kvPerRow, $"{perRow} bytes per row, the cache alone {kvPerRow}");
        Assert.True(perRow < 4 * kvPerRow + model.Config.VocabSize * 64L, "the estimate should stay near what a row holds");
    }

    [Fact]
    public void FromMemory_FitsTheBudget_AndStaysWithinItsBounds()
    {
        using var model = CausalLM.Load(Path.Combine(AppContext.BaseDirectory, "fixtures", "demo", "policy"), CPU);
        long perRow = BatchRows.BytesPerRow(model.Config, model.DType, 32, 64);
        long fixedBytes = BatchRows.FixedBytes(model.Config, model.DType, 32);
        long available = fixedBytes * 2 + 100 * perRow;

        int rows = BatchRows.FromMemory(model.Config, model.DType, 32, 64, available, fraction: 1.0);

        Assert.True(rows * perRow + fixedBytes <= available);
        Assert.True((rows + 1) * perRow + fixedBytes > available);
        Assert.Equal(1, BatchRows.FromMemory(model.Config, model.DType, 32, 64, 1));
        Assert.Equal(BatchRows.Max, BatchRows.FromMemory(model.Config, model.DType, 32, 64, long.MaxValue / 4));
    }
}
