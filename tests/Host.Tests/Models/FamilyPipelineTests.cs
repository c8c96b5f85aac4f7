using System.Text.Json;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Artifacts;
using PrefPipe.Models.Decoders;
using PrefPipe.Models.SafeTensors;
using Spectre.Console.Testing;
using static TorchSharp.torch;

namespace PrefPipe.Host.Tests.Models;

/// <summary>
/// A tiny model of each family (tests/fixtures/tiny-*, made by transformers) through the demo pipeline: ingest
/// (generation with the KV cache, past the sliding windows), rank with the demo reward model, split, and DPO, whose
/// checkpoint must be the family's own layout and config.
/// </summary>
public sealed class FamilyPipelineTests
{
    private static readonly string Fixtures = Path.Combine(AppContext.BaseDirectory, "fixtures");

    public static TheoryData<string> Families() =>
    [
        "tiny-qwen3", "tiny-qwen3-sliding", "tiny-gemma2", "tiny-gemma3", "tiny-gemma3-softcap-linear",
        "tiny-phi3", "tiny-phi4mini", "tiny-olmo2", "tiny-qwen2-sliding", "tiny-mistral-sliding",
    ];

    [Theory]
    [MemberData(nameof(Families))]
    public async Task Run_IngestToDpo_TrainsAndSavesTheFamilysOwnCheckpoint(string name)
    {
        string policy = Path.Combine(Fixtures, name);
        string root = Directory.CreateTempSubdirectory("prefpipe-family-").FullName;
        string prompts = Path.Combine(root, "prompts.jsonl");
        File.WriteAllLines(prompts, File.ReadLines(Path.Combine(Fixtures, "demo", "prompts.jsonl")).Take(8));
        string pipeline = Path.Combine(root, "p.yaml");
        File.WriteAllText(pipeline, $"""
            name: family
            storage: {root}/runs
            inputs:
              prompts: {prompts}
            models:
              policy: {policy}
              reward: {Path.Combine(Fixtures, "demo", "reward")}
            ingest:
              candidates_per_prompt: 2
              max_new_tokens: 12
              batch_size: 4
              deduplicate: false
            split:
              rule: quantile
              quantile: 0.5
            training:
              plan: mpo
              dpo:
                num_train_epochs: 1
                per_device_train_batch_size: 2
                max_length: 64
                max_prompt_length: 48
            """);

        var console = new TestConsole().Width(250);
        int exit = await PrefPipe.Host.Commands.Cli.InvokeAsync(["run", pipeline, "--run-id", "r", "--until", "dpo"], console);
        Assert.True(exit == 0, console.Output);

        var store = new LocalArtifactStore(Path.Combine(root, "runs"));
        var candidates = await ParquetArtifacts.ReadAllAsync<CandidateRow>(store, "r/ingest/candidates.parquet");
        Assert.Equal(16, candidates.Count);
        // Prompt + 12 new tokens pass the 6–8-token windows of the sliding fixtures.
        Assert.Contains(candidates, c => c.PromptInputIds!.Count + c.ResponseInputIds!.Count > 8);

        string checkpoint = Directory.GetFiles(Path.Combine(root, "runs", "r", "dpo"), "config.json", SearchOption.AllDirectories)
            .Select(Path.GetDirectoryName).OrderBy(d => d!.Length).First()!;
        using var savedJson = JsonDocument.Parse(File.ReadAllText(Path.Combine(checkpoint, "config.json")));
        using var startJson = JsonDocument.Parse(File.ReadAllText(Path.Combine(policy, "config.json")));
        Assert.Equal(startJson.RootElement.GetProperty("model_type").GetString(), savedJson.RootElement.GetProperty("model_type").GetString());
        Assert.Equal(DecoderConfig.Load(policy).GetType(), DecoderConfig.Load(checkpoint).GetType());

        using var start = SafeTensorsFile.Open(Path.Combine(policy, "model.safetensors"));
        var savedFiles = Directory.GetFiles(checkpoint, "*.safetensors");
        var savedNames = savedFiles.SelectMany(f => { using var s = SafeTensorsFile.Open(f); return s.Tensors.Keys.ToList(); }).Order(StringComparer.Ordinal);
        Assert.Equal(start.Tensors.Keys.Order(StringComparer.Ordinal), savedNames);

        // DPO moved the weights.
        using var scope = NewDisposeScope();
        using var before = CausalLM.Load(policy, CPU);
        using var after = CausalLM.Load(checkpoint, CPU);
        using var _ = no_grad();
        var ids = tensor(candidates[0].PromptInputIds!.Select(i => (long)i).ToArray(), new long[] { 1, candidates[0].PromptInputIds!.Count });
        Assert.True((after.Logits(new CausalLMInput(ids)) - before.Logits(new CausalLMInput(ids))).abs().max().item<float>() > 0);
    }
}
