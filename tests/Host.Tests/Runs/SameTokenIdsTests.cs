using System.Text.Json;
using PrefPipe.Artifacts;
using PrefPipe.Artifacts.Inputs;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Text.Tokenizers;
using Spectre.Console.Testing;

namespace PrefPipe.Host.Tests.Runs;

/// <summary>
/// The ids generation used are the ids training scores: with the start policy as reference, a candidate's log-prob at
/// ingest equals the reference pass's log-prob of it. Run on the demo policy (no template, no BOS) and on the same weights
/// with a Gemma-style template that starts with <c>{{ bos_token }}</c> and a post-processor that adds BOS, where a
/// re-encoded rendered prompt got two BOS (49 nats apart).
/// </summary>
public sealed class SameTokenIdsTests
{
    private static readonly string Fixtures = Path.Combine(AppContext.BaseDirectory, "fixtures");
    private static readonly string Demo = Path.Combine(Fixtures, "demo");

    private static async Task<(int Exit, string Output)> Cli(params string[] args)
    {
        var console = new TestConsole().Width(250);
        int exit = await PrefPipe.Host.Commands.Cli.InvokeAsync(args, console);
        return (exit, console.Output);
    }

    private static string Pipeline(string root, string policy, bool messages)
    {
        string prompts = Path.Combine(root, "prompts.jsonl");
        var lines = File.ReadLines(Path.Combine(Demo, "prompts.jsonl")).Take(40);
        if (messages)
        {
            // TRL conversational prompts: one user turn, or a system turn before it.
            lines = lines.Select((line, i) =>
            {
                string text = JsonDocument.Parse(line).RootElement.GetProperty("prompt").GetString()!;
                object[] turns = i % 2 == 0 ? [new { role = "user", content = text }] : [new { role = "system", content = "Be brief." }, new { role = "user", content = text }];
                return JsonSerializer.Serialize(new { messages = turns });
            }).ToList();
        }
        File.WriteAllLines(prompts, lines);
        string yaml = $"""
            name: ids
            storage: {root}/runs
            inputs:
              prompts: {prompts}
            models:
              policy: {policy}
              reward: {Path.Combine(Demo, "reward")}
            ingest:
              candidates_per_prompt: 3
              max_new_tokens: 48
              batch_size: 16
              deduplicate: false
            split:
              rule: quantile
              quantile: 0.5
            training:
              plan: mpo
              dpo:
                num_train_epochs: 1
                per_device_train_batch_size: 8
                max_length: 256
                max_prompt_length: 128
            """;
        string path = Path.Combine(root, "ids.yaml");
        File.WriteAllText(path, yaml);
        return path;
    }

    [Theory]
    [InlineData("demo/policy", false)]
    [InlineData("templated-bos-policy", false)]
    [InlineData("templated-bos-policy", true)]
    public async Task Run_CandidateLogprobAtIngest_EqualsReferencePassLogprob(string policyFolder, bool messages)
    {
        string policy = Path.Combine(Fixtures, policyFolder);
        string root = Directory.CreateTempSubdirectory("prefpipe-ids-").FullName;
        var (exit, output) = await Cli("run", Pipeline(root, policy, messages), "--run-id", "r", "--until", "dpo");
        Assert.True(exit == 0, output);

        var store = new LocalArtifactStore(Path.Combine(root, "runs"));
        var candidates = (await ParquetArtifacts.ReadAllAsync<CandidateRow>(store, "r/ingest/candidates.parquet")).ToDictionary(c => (c.PromptId, c.CandidateIndex));
        var easy = (await PreferenceArtifacts.ReadAllAsync(store, "r/split/easy.parquet")).ToDictionary(p => p.PromptId);
        string referencePath = Directory.GetFiles(Path.Combine(root, "runs", "r", "dpo"), "reference_logps-*.parquet").Single();
        var reference = await ParquetArtifacts.ReadAllAsync<ReferenceLogProbRow>(store, Path.GetRelativePath(Path.Combine(root, "runs"), referencePath));

        // Prompt ids as generation saw them: never two BOS; exactly one where the template or post-processor adds it.
        int bos = HfTokenizer.LoadHf(policy).BosTokenId ?? -1;
        foreach (var c in candidates.Values)
            Assert.Equal(policyFolder == "templated-bos-policy" ? 1 : 0, c.PromptInputIds!.TakeWhile(i => i == bos).Count());

        int checkedCount = 0;
        double worst = 0;
        foreach (var r in reference)
        {
            var pair = easy[r.PromptId];
            foreach (var (index, logps) in new[] { (pair.ChosenIndex, r.ChosenLogps), (pair.RejectedIndex, r.RejectedLogps) })
            {
                var candidate = candidates[(r.PromptId, index)];
                if (candidate.FinishReason != "eos") continue; // a sample cut by max_new_tokens is trained with an EOS it did not generate
                // Null is only for an external server that returned no log-probs; the local engine must always record them.
                Assert.True(candidate.LogprobSum is not null, $"{r.PromptId}/{index}: the local engine wrote no logprob_sum");
                worst = Math.Max(worst, Math.Abs(logps - candidate.LogprobSum.Value));
                checkedCount++;
            }
        }
        Assert.True(checkedCount >= 10, $"only {checkedCount} EOS-ended responses were checked");
        Assert.True(worst < 1e-3, $"the reference pass scored other ids than generation: worst |Δ log p| = {worst} nats over {checkedCount} responses");

        // train dpo --dry-run --json on the run's own pairs shows exactly the ids generation used.
        var (dryExit, json) = await Cli("train", "dpo", "--data", Path.Combine(root, "runs", "r", "split", "easy.parquet"), "--model", policy,
            "--max-length", "256", "--max-prompt-length", "128", "--dry-run", "--json");
        Assert.True(dryExit == 0, json);
        var lines = json.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(easy.Count, lines.Length);
        foreach (string line in lines)
        {
            using var doc = JsonDocument.Parse(line);
            string id = doc.RootElement.GetProperty("prompt_id").GetString()!;
            var chosen = candidates[(id, easy[id].ChosenIndex)];
            Assert.Equal(chosen.PromptInputIds, doc.RootElement.GetProperty("prompt_ids").EnumerateArray().Select(e => e.GetInt32()));
            var chosenIds = doc.RootElement.GetProperty("chosen_ids").EnumerateArray().Select(e => e.GetInt32()).ToList();
            Assert.Equal(chosen.ResponseInputIds, chosen.FinishReason == "eos" ? chosenIds : chosenIds[..^1]);
        }

        // model generate --messages shows the prompt ids ingest fed the policy for the same prompt.
        var first = JsonDocument.Parse(File.ReadLines(Path.Combine(root, "prompts.jsonl")).First()).RootElement;
        string text = messages ? first.GetProperty("messages")[0].GetProperty("content").GetString()! : first.GetProperty("prompt").GetString()!;
        string conversation = JsonSerializer.Serialize(new[] { new { role = "user", content = text } });
        var (genExit, genJson) = await Cli("model", "generate", "--model", policy, "--messages", conversation, "--greedy", "--max-new-tokens", "4", "--json");
        Assert.True(genExit == 0, genJson);
        using var gen = JsonDocument.Parse(genJson);
        var ingestIds = candidates.Values.Where(c => c.Prompt.Contains(text, StringComparison.Ordinal)).Select(c => c.PromptInputIds).First();
        Assert.Equal(ingestIds, gen.RootElement.GetProperty("prompt_ids").EnumerateArray().Select(e => e.GetInt32()));

        await AssertPreferencesKeepThePromptsAsync(store, Path.Combine(root, "prompts.jsonl"), candidates, messages);
    }

    /// <summary>
    /// Rank's pairs carry the prompt as the input gave it, never the rendered template: conversations as TRL
    /// conversational pairs (prompt the input's turns, chosen and rejected the assistant turn) that PreferenceSource reads
    /// as conversational with the ids generation used; plain prompts as standard pairs whose prompt is the raw text.
    /// </summary>
    private static async Task AssertPreferencesKeepThePromptsAsync(LocalArtifactStore store, string promptsFile,
        Dictionary<(string, int), CandidateRow> candidates, bool messages)
    {
        var lines = File.ReadAllLines(promptsFile);
        var prompts = (await ParquetArtifacts.ReadAllAsync<PromptRow>(store, "r/ingest/prompts.parquet")).ToDictionary(p => p.PromptId);
        const string path = "r/rank/preferences.parquet";
        Assert.Equal(messages ? PreferenceFormat.Conversational : PreferenceFormat.Standard, await PreferenceSource.DetectFormatAsync(store, path));
        var pairs = new List<PreferenceInput>();
        await foreach (var input in PreferenceSource.ReadAsync(store, path)) pairs.Add(input);
        var typed = await PreferenceArtifacts.ReadAllAsync(store, path); // with the candidate indices, which TRL files do not carry
        Assert.NotEmpty(pairs);
        Assert.Equal(typed.Count, pairs.Count);
        foreach (var (read, row) in pairs.Select(p => p.Pair!).Zip(typed))
        {
            Assert.Equal(row.PromptId, read.PromptId);
            var pair = read with { ChosenIndex = row.ChosenIndex, RejectedIndex = row.RejectedIndex };
            var input = JsonDocument.Parse(lines[prompts[pair.PromptId].SourceRow]).RootElement;
            var chosen = candidates[(pair.PromptId, pair.ChosenIndex)];
            var rejected = candidates[(pair.PromptId, pair.RejectedIndex)];
            if (messages)
            {
                var turns = input.GetProperty("messages").EnumerateArray()
                    .Select(t => new ChatTurnRow { Role = t.GetProperty("role").GetString()!, Content = t.GetProperty("content").GetString()! }).ToList();
                Assert.Equal(turns, pair.PromptMessages);
            }
            else
            {
                Assert.Null(pair.PromptMessages);
                Assert.Equal(input.GetProperty("prompt").GetString(), pair.Prompt);
            }
            Assert.Equal((chosen.Response, rejected.Response), (pair.Chosen, pair.Rejected));
            Assert.Equal(chosen.PromptInputIds, pair.PromptInputIds);
            Assert.Equal(chosen.ResponseInputIds, pair.ChosenInputIds);
            Assert.Equal(rejected.ResponseInputIds, pair.RejectedInputIds);
        }
        if (messages)
        {
            // As TRL reads it: chosen and rejected are lists holding the one assistant turn.
            foreach (var row in await ParquetArtifacts.ReadAllAsync<ConversationalPreferenceRow>(store, path))
            {
                Assert.Equal([new ChatTurnRow { Role = "assistant", Content = candidates[(row.PromptId, row.ChosenIndex)].Response }], row.Chosen);
                Assert.Equal([new ChatTurnRow { Role = "assistant", Content = candidates[(row.PromptId, row.RejectedIndex)].Response }], row.Rejected);
            }
        }
    }

    [Fact]
    public async Task TrainDpoDryRun_StandardPairWithRenderedBosPrompt_HasOneBos()
    {
        // A TRL standard file whose prompt was rendered by the policy's template (it starts with the BOS text): the
        // post-processor must not add a second BOS.
        string policy = Path.Combine(Fixtures, "templated-bos-policy");
        string root = Directory.CreateTempSubdirectory("prefpipe-ids-trl-").FullName;
        string rendered = "<|endoftext|><start_of_turn>user\nReview of Driftwood:<end_of_turn>\n<start_of_turn>model\n";
        await ParquetArtifacts.WriteAsync(new LocalArtifactStore(root), "pairs.parquet", new[]
        {
            new PreferenceRow { PromptId = "a", Prompt = rendered, Chosen = " A joy to watch.", Rejected = " I hated it." },
            new PreferenceRow { PromptId = "b", Prompt = "Review of Driftwood:", Chosen = " A joy to watch.", Rejected = " I hated it." },
        });

        var (exit, json) = await Cli("train", "dpo", "--data", Path.Combine(root, "pairs.parquet"), "--model", policy, "--dry-run", "--json");

        Assert.True(exit == 0, json);
        var prompts = json.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => JsonDocument.Parse(l).RootElement.GetProperty("prompt_ids").EnumerateArray().Select(e => e.GetInt32()).ToList()).ToList();
        Assert.All(prompts, ids => Assert.Single(ids.TakeWhile(i => i == 0)));
        Assert.Equal(PromptEncoder.Load(policy).EncodeText("Review of Driftwood:").Ids, prompts[0]); // as ingest encodes the prompt
    }
}
