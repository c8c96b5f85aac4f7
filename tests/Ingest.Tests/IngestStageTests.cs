using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Inputs;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;

namespace PrefPipe.Ingest.Tests;

/// <summary>The ingest stage from prompts to artifacts on the demo policy: resume per batch, and parts never shared across inputs.</summary>
public sealed class IngestStageTests
{
    private static readonly string Demo = Path.Combine(AppContext.BaseDirectory, "fixtures", "demo");

    /// <summary>The first <paramref name="take"/> demo prompts, read the way the pipeline reads them.</summary>
    private static IAsyncEnumerable<PromptInput> Prompts(int take) =>
        PromptSource.ReadAsync(WriteLines(File.ReadLines(Path.Combine(Demo, "prompts.jsonl")).Take(take)));

    private static string WriteLines(IEnumerable<string> lines)
    {
        string file = Path.Combine(Directory.CreateTempSubdirectory("prefpipe-prompts-").FullName, "prompts.jsonl");
        File.WriteAllLines(file, lines);
        return file;
    }

    private static IngestOptions Ingest() => new() { CandidatesPerPrompt = 4, MaxNewTokens = 40, BatchSize = 8, Seed = 11 };

    [Fact]
    public async Task Ingest_Rerun_ProducesIdenticalArtifactsAndResumesMissingBatches()
    {
        var store = new LocalArtifactStore(Directory.CreateTempSubdirectory("prefpipe-rerun-").FullName);
        var other = new LocalArtifactStore(Directory.CreateTempSubdirectory("prefpipe-rerun2-").FullName);
        string policy = Path.Combine(Demo, "policy");

        var first = await new IngestStage(Ingest()).RunAsync(Prompts(12), "p", policy, store, "i");
        var fresh = await new IngestStage(Ingest()).RunAsync(Prompts(12), "p", policy, other, "i");
        // Simulate a crash after the first batch: remove the second part, then resume.
        string part = await store.ListAsync("i/").SingleAsync(p => p.StartsWith("i/parts-", StringComparison.Ordinal) && p.EndsWith("/batch-00001.parquet", StringComparison.Ordinal));
        await store.DeleteAsync(part);
        var resumed = await new IngestStage(Ingest()).RunAsync(Prompts(12), "p", policy, store, "i");

        Assert.Equal(first.Candidates.Sha256, fresh.Candidates.Sha256);
        Assert.Equal(first.Candidates.Sha256, resumed.Candidates.Sha256);
        Assert.Equal(1, resumed.ResumedBatches);
        Assert.Equal(first.Candidates.Rows, resumed.Candidates.Rows);
    }

    [Fact]
    public async Task Ingest_FewerDecodingRowsThanABatch_SameCandidates_AndResumesByteIdentical()
    {
        // 8 prompts × 4 candidates per batch through 5 decoding rows: candidates join as others end. The samples are the
        // ones the whole-batch engine draws (same seeds; log-probs up to floating-point noise), and a resumed run writes
        // the same bytes as an uninterrupted one with the same rows.
        string policy = Path.Combine(Demo, "policy");
        var whole = new LocalArtifactStore(Directory.CreateTempSubdirectory("prefpipe-rows-whole-").FullName);
        var narrow = new LocalArtifactStore(Directory.CreateTempSubdirectory("prefpipe-rows-narrow-").FullName);
        var options = Ingest();
        options.MaxBatchRows = 5;

        var wide = await new IngestStage(Ingest()).RunAsync(Prompts(16), "p", policy, whole, "i");
        var first = await new IngestStage(options).RunAsync(Prompts(16), "p", policy, narrow, "i");
        string part = await narrow.ListAsync("i/").SingleAsync(p => p.StartsWith("i/parts-", StringComparison.Ordinal) && p.EndsWith("/batch-00000.parquet", StringComparison.Ordinal));
        await narrow.DeleteAsync(part);
        var resumed = await new IngestStage(options).RunAsync(Prompts(16), "p", policy, narrow, "i");

        Assert.Equal(32, wide.Generation!.BatchRows);
        Assert.Equal(5, first.Generation!.BatchRows);
        Assert.True(first.Generation.Joined > 0, "no candidate joined a running batch");
        Assert.True(first.Generation.Utilisation > wide.Generation.Utilisation, $"utilisation {first.Generation.Utilisation:F3} vs {wide.Generation.Utilisation:F3}");
        Assert.Equal(first.Candidates.Sha256, resumed.Candidates.Sha256);
        Assert.Equal(1, resumed.ResumedBatches);
        var a = await ParquetArtifacts.ReadAllAsync<CandidateRow>(whole, wide.Candidates.Path);
        var b = await ParquetArtifacts.ReadAllAsync<CandidateRow>(narrow, first.Candidates.Path);
        Assert.Equal(a.Count, b.Count);
        for (int i = 0; i < a.Count; i++)
        {
            Assert.Equal(a[i].ResponseInputIds, b[i].ResponseInputIds);
            Assert.Equal(a[i].FinishReason, b[i].FinishReason);
            Assert.True(Math.Abs(a[i].LogprobSum!.Value - b[i].LogprobSum!.Value) <= 1e-3, $"row {i}: {a[i].LogprobSum} vs {b[i].LogprobSum}");
        }
    }

    [Fact]
    public async Task Ingest_BatchRowsFromMemory_UsesWhatFitsWithinMaxBatchRows()
    {
        string policy = Path.Combine(Demo, "policy");
        var store = new LocalArtifactStore(Directory.CreateTempSubdirectory("prefpipe-rows-memory-").FullName);
        var options = Ingest();
        options.BatchRowsFromMemory = true;
        options.MaxBatchRows = 7;

        var result = await new IngestStage(options).RunAsync(Prompts(8), "p", policy, store, "i");

        // The demo policy needs well under a megabyte per row: free memory allows the cap.
        Assert.Equal(7, result.Generation!.BatchRows);
        Assert.Equal(4 * result.Prompts.Rows, result.Candidates.Rows);
    }

    [Fact]
    public async Task Ingest_OtherPromptsIntoTheSameOutput_GeneratesForTheNewPromptsOnly()
    {
        // Batch parts of the first prompts are in the output folder; other prompts must never be merged with them (the
        // old parts were reused: a KeyNotFoundException, or old candidates under new prompts).
        var store = new LocalArtifactStore(Directory.CreateTempSubdirectory("prefpipe-newprompts-").FullName);
        string policy = Path.Combine(Demo, "policy");
        await new IngestStage(Ingest()).RunAsync(Prompts(12), "p", policy, store, "i");

        var second = await new IngestStage(Ingest()).RunAsync(Prompts(20).Skip(12), "p2", policy, store, "i");

        var prompts = await ParquetArtifacts.ReadAllAsync<PromptRow>(store, second.Prompts.Path);
        var candidates = await ParquetArtifacts.ReadAllAsync<CandidateRow>(store, second.Candidates.Path);
        Assert.NotEmpty(prompts);
        Assert.Equal(0, second.ResumedBatches);
        Assert.Equal(prompts.Select(p => p.PromptId).Order(), candidates.Select(c => c.PromptId).Distinct().Order());
    }

    [Fact]
    public async Task RunAsync_JsonlWithBadRows_EveryRowEndsInPromptsOrRejectsWithItsRow()
    {
        string[] lines =
        [
            """{"id": "a", "prompt": "Review of Driftwood:"}""",
            """{"id": "b", "prompt": "Review of""",
            """{"id": "c", "messages": [{"role": "user", "content": "Review of Starling:"}]}""",
            """{"id": "d", "prompt": "   "}""",
            "",
            """{"id": "e", "messages": [{"role": "user", "content": "Review of Red Canyon:"}, {"role": "assistant", "content": "A joy."}]}""",
            """{"id": "f", "prompt": "Review of Copper Sky:", "lang": "en"}""",
        ];
        string file = WriteLines(lines);
        var store = new LocalArtifactStore(Directory.CreateTempSubdirectory("prefpipe-badrows-").FullName);

        var result = await new IngestStage(new IngestOptions { CandidatesPerPrompt = 2, MaxNewTokens = 8, BatchSize = 4, Seed = 11 })
            .RunAsync(PromptSource.ReadAsync(file), file, Path.Combine(Demo, "policy"), store, "i");

        var prompts = await ParquetArtifacts.ReadAllAsync<PromptRow>(store, result.Prompts.Path);
        var rejects = await ParquetArtifacts.ReadAllAsync<RejectRow>(store, result.Rejects.Path);
        Assert.Equal(lines.Length, result.RowsIn);
        Assert.Equal(Enumerable.Range(0, lines.Length).Select(i => (long)i), prompts.Select(p => p.SourceRow).Concat(rejects.Select(r => r.Row)).Order());
        Assert.Equal([0L, 2, 6], prompts.Select(p => p.SourceRow));
        Assert.Equal("Review of Driftwood:", prompts[0].Prompt);
        Assert.Equal([("user", "Review of Starling:")], prompts[1].Messages!.Select(m => (m.Role, m.Content)));
        Assert.All(prompts, p => Assert.Equal(lines[p.SourceRow], p.Extra));
        Assert.Equal(prompts.Count * 2, result.Candidates.Rows);

        Assert.All(rejects, r => Assert.Equal(("ingest", file, lines[r.Row]), (r.Stage, r.Source, r.Raw)));
        Assert.Equal([1L, 3, 4, 5], rejects.Select(r => r.Row));
        // The reader's reasons name the line; the stage's own (validation) reasons stand on their row.
        Assert.StartsWith("line 2: invalid JSON", rejects[0].Reason, StringComparison.Ordinal);
        Assert.StartsWith("line 4: column 'prompt' is empty", rejects[1].Reason, StringComparison.Ordinal);
        Assert.Equal("d", rejects[1].Key);
        Assert.StartsWith("line 5: empty line", rejects[2].Reason, StringComparison.Ordinal);
        Assert.Contains("ends with a 'assistant' turn", rejects[3].Reason, StringComparison.Ordinal);
    }
}
