using System.Text.Json;
using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;

namespace PrefPipe.Ingest.Tests;

/// <summary>The ingest stage from prompts to artifacts on the demo policy: resume per batch, and parts never shared across inputs.</summary>
public sealed class IngestStageTests
{
    private static readonly string Demo = Path.Combine(AppContext.BaseDirectory, "fixtures", "demo");

    private static async IAsyncEnumerable<PromptInput> Prompts(int take)
    {
        long row = 0;
        foreach (var line in File.ReadLines(Path.Combine(Demo, "prompts.jsonl")).Take(take))
        {
            using var doc = JsonDocument.Parse(line);
            yield return new(row++, doc.RootElement.GetProperty("prompt").GetString(), null, line);
        }
        await Task.CompletedTask;
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
}
