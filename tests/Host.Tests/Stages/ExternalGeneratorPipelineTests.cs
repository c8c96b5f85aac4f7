using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Host.Runs;
using PrefPipe.Text.Tokenizers;
using PrefPipe.Tests.Remote;

namespace PrefPipe.Host.Tests.Stages;

/// <summary>
/// A pipeline whose candidates come from an OpenAI-compatible server (a loopback server written to the OpenAI API
/// reference): ingest → rank → split → dpo on the demo policy's tokenizer, with transient 503s, a prompt that keeps
/// failing, and an API key that must never reach a file or a log line.
/// </summary>
public sealed class ExternalGeneratorPipelineTests
{
    /// <summary>The key every test of this assembly puts in PREFPIPE_GENERATOR_API_KEY (one process: one value).</summary>
    internal const string SecretKey = "sk-pipeline-test-91c4e0d2-secret";
    private static readonly string Fixtures = Path.Combine(AppContext.BaseDirectory, "fixtures");
    private static readonly string Demo = Path.Combine(Fixtures, "demo");

    static ExternalGeneratorPipelineTests() => Environment.SetEnvironmentVariable("PREFPIPE_GENERATOR_API_KEY", SecretKey);

    private static string Pipeline(string root, string policy, bool messages, OpenAIReferenceServer server)
    {
        var lines = File.ReadLines(Path.Combine(Demo, "prompts.jsonl")).Take(40).Select(line =>
        {
            var row = JsonDocument.Parse(line).RootElement;
            string id = row.GetProperty("id").GetString()!, text = row.GetProperty("prompt").GetString()!;
            return messages ? JsonSerializer.Serialize(new { id, messages = new[] { new { role = "user", content = text } } }) : line;
        });
        string prompts = Path.Combine(root, "prompts.jsonl");
        File.WriteAllLines(prompts, lines);
        string path = Path.Combine(root, "ext.yaml");
        File.WriteAllText(path, $"""
            name: ext
            storage: {root}/runs
            inputs:
              prompts: {prompts}
            models:
              policy: {policy}
              reward: {Path.Combine(Demo, "reward")}
            ingest:
              candidates_per_prompt: 4
              max_new_tokens: 24
              batch_size: 16
              deduplicate: false
              generator:
                type: openai
                base_url: {server.V1}
                model: policy
                max_concurrency: 4
                timeout: 20s
                retry_base_delay: 10ms
            split:
              rule: quantile
              quantile: 0.5
            training:
              plan: mpo
              dpo:
                num_train_epochs: 1
                per_device_train_batch_size: 8
                max_length: 96
                max_prompt_length: 64
            """);
        return path;
    }

    [Theory]
    [InlineData("demo/policy", false, "/v1/completions")]
    [InlineData("templated-bos-policy", true, "/v1/chat/completions")]
    public async Task Run_ExternalGenerator_IngestRankSplitDpoCompleteAndTheKeyIsNowhere(string policyFolder, bool messages, string endpoint)
    {
        string policy = Path.Combine(Fixtures, policyFolder);
        string root = Directory.CreateTempSubdirectory("prefpipe-extgen-").FullName;
        var attempts = new ConcurrentDictionary<string, int>();
        await using var server = new OpenAIReferenceServer
        {
            // Every request's first attempt is a 503; row 5's title always fails.
            Faults = r => r.PromptText.Contains(Title(5), StringComparison.Ordinal) ? new OpenAIReferenceServer.Fault(500, Message: "engine crashed")
                : attempts.AddOrUpdate($"{r.PromptText}|{r.Body["seed"]}", 1, (_, n) => n + 1) == 1 ? new OpenAIReferenceServer.Fault(503) : null,
        };
        string file = Pipeline(root, policy, messages, server);

        var (exit, error, output) = await SmallPipeline.InvokeAsync("run", file, "--run-id", "ext", "--until", "dpo");

        Assert.True(exit == 0, $"exit {exit}: {error}\n{output}");
        Assert.All(server.Requests, r => Assert.Equal(endpoint, r.Path));
        Assert.All(server.Requests, r => Assert.Equal($"Bearer {SecretKey}", r.Headers["Authorization"]));
        var store = new LocalArtifactStore(Path.Combine(root, "runs"));
        int failing = File.ReadLines(Path.Combine(Demo, "prompts.jsonl")).Take(40).Count(l => l.Contains($"\"{Title(5)}\"", StringComparison.Ordinal));
        Assert.InRange(failing, 1, 5);
        var ingest = (await RunRecord.LoadAsync(store, "ext", default))!.Stage(PipelineStage.Ingest);
        Assert.Equal(40, ingest.RowsIn);
        Assert.Equal(40 - failing, ingest.RowsOut);
        Assert.Equal(failing, ingest.RowsRejected);
        var rejects = await ParquetArtifacts.ReadAllAsync<RejectRow>(store, "ext/ingest/rejects.parquet");
        Assert.Equal(failing, rejects.Count);
        Assert.All(rejects, r => Assert.Contains("engine crashed", r.Reason, StringComparison.Ordinal));
        var candidates = await ParquetArtifacts.ReadAllAsync<CandidateRow>(store, "ext/ingest/candidates.parquet");
        Assert.Equal((40 - failing) * 4, candidates.Count);
        var pairs = await PreferenceArtifacts.ReadAllAsync(store, "ext/rank/preferences.parquet");
        Assert.NotEmpty(pairs);
        Assert.All(pairs, p => Assert.Null(p.ChosenInputIds));
        Assert.True(File.Exists(Path.Combine(root, "runs", "ext", "dpo", "metrics.parquet")));

        // Training keeps ingest's prompt ids and encodes the server's texts with the policy's tokenizer, ended by EOS.
        var (dryExit, dryError, dry) = await SmallPipeline.InvokeAsync("train", "dpo", "--data", Path.Combine(root, "runs", "ext", "split", "easy.parquet"),
            "--model", policy, "--dry-run", "--json");
        Assert.True(dryExit == 0, dryError);
        var encoder = PromptEncoder.Load(policy);
        var easy = (await PreferenceArtifacts.ReadAllAsync(store, "ext/split/easy.parquet")).ToDictionary(p => p.PromptId);
        var lines = dry.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.StartsWith('{')).ToList();
        Assert.Equal(easy.Count, lines.Count);
        foreach (string line in lines)
        {
            using var encoded = JsonDocument.Parse(line);
            var pair = easy[encoded.RootElement.GetProperty("prompt_id").GetString()!];
            Assert.Equal(pair.PromptInputIds, Ints(encoded.RootElement.GetProperty("prompt_ids")));
            Assert.Equal([.. encoder.Tokenizer.Encode(pair.Chosen, addSpecialTokens: false), encoder.EosTokenId], Ints(encoded.RootElement.GetProperty("chosen_ids")));
        }

        Assert.DoesNotContain(SecretKey, error, StringComparison.Ordinal);
        Assert.DoesNotContain(SecretKey, output, StringComparison.Ordinal);
        foreach (string f in Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories))
            Assert.DoesNotContain(SecretKey, Encoding.Latin1.GetString(File.ReadAllBytes(f)), StringComparison.Ordinal);
    }

    private static string Title(int row) =>
        JsonDocument.Parse(File.ReadLines(Path.Combine(Demo, "prompts.jsonl")).ElementAt(row)).RootElement.GetProperty("prompt").GetString()!;

    private static List<int> Ints(JsonElement array) => [.. array.EnumerateArray().Select(e => e.GetInt32())];
}
