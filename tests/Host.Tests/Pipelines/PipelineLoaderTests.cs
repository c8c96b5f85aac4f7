using PrefPipe.Host.Pipelines;
using PrefPipe.Splitter;
using PrefPipe.Trainer.Optimization;

namespace PrefPipe.Host.Tests.Pipelines;

public sealed class PipelineLoaderTests
{
    private readonly string _dir = Directory.CreateTempSubdirectory("prefpipe-pipeline-").FullName;

    public PipelineLoaderTests()
    {
        Directory.CreateDirectory(Path.Combine(_dir, "policy"));
        File.WriteAllText(Path.Combine(_dir, "policy", "config.json"), "{}");
        File.WriteAllText(Path.Combine(_dir, "policy", "tokenizer.json"), "{}");
        Directory.CreateDirectory(Path.Combine(_dir, "reward"));
        File.WriteAllText(Path.Combine(_dir, "reward", "model.onnx"), "");
        File.WriteAllText(Path.Combine(_dir, "reward", "tokenizer.json"), "{}");
        File.WriteAllText(Path.Combine(_dir, "prompts.jsonl"), "{\"prompt\": \"hi\"}\n");
    }

    private const string Valid = """
        name: demo
        inputs:
          prompts: prompts.jsonl
        models:
          policy: policy
          reward: reward
        ingest:
          candidates_per_prompt: 6
          temperature: 0.8
          over_long: truncate
          stop_strings: ["\n\n"]
        ranking:
          judge: reward
          reward:
            batch_size: 32
            truncation: left
        split:
          rule: threshold
          threshold: 0.75
          negative_gaps: flip
        training:
          plan: mpo
          dpo:
            learning_rate: 5.0e-5
            lr_scheduler_type: linear
            objective:
              loss_type: mipo
              beta: 15
        triggers:
          schedule: "0 3 * * *"
          blob:
            container: prompts-in
            prefix: incoming/
            poll_interval: 45s
        """;

    private string Write(string yaml, string name = "p.yaml")
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, yaml);
        return path;
    }

    private PipelineFileException Fails(string yaml, IReadOnlyList<string>? overrides = null, Func<string, string?>? env = null) =>
        Assert.Throws<PipelineFileException>(() => PipelineLoader.Load(Write(yaml), overrides, env ?? (_ => null)));

    [Fact]
    public void Load_ValidFile_BindsSnakeCaseKeysEnumsDurationsAndNestedOptions()
    {
        var p = PipelineLoader.Load(Write(Valid), environment: _ => null);
        var d = p.Definition;

        Assert.Equal("demo", d.Name);
        Assert.Equal(6, d.Ingest.CandidatesPerPrompt);
        Assert.Equal(0.8, d.Ingest.Temperature);
        Assert.Equal(PrefPipe.Ingest.OverLongPolicy.Truncate, d.Ingest.OverLong);
        Assert.Equal(["\n\n"], d.Ingest.StopStrings);
        Assert.Equal(32, d.Ranking.Reward.BatchSize);
        Assert.Equal(SplitRule.Threshold, d.Split.Rule);
        Assert.Equal(NegativeGapPolicy.Flip, d.Split.NegativeGaps);
        Assert.Equal(5e-5, d.Training.Dpo.LearningRate);
        Assert.Equal(ScheduleKind.Linear, d.Training.Dpo.LrSchedulerType);
        Assert.Equal("mipo", d.Training.Dpo.Objective.LossType);
        Assert.Equal(15, d.Training.Dpo.Objective.Beta);
        Assert.Equal(TimeSpan.FromSeconds(45), d.Triggers.Blob!.PollInterval);
        Assert.Equal(Path.Combine(_dir, "policy"), p.Resolve(d.Models.Policy));
    }

    [Fact]
    public void Load_UnknownKey_NamesItAndListsTheValidOnes()
    {
        var ex = Fails(Valid.Replace("candidates_per_prompt: 6", "candidates_per_promt: 6", StringComparison.Ordinal));

        Assert.Contains("ingest.candidates_per_promt: unknown key; expected one of", ex.Message, StringComparison.Ordinal);
        Assert.Contains("candidates_per_prompt", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_WrongTypesAndRanges_ReportsEveryProblemWithKeyValueAndExpectation()
    {
        string yaml = Valid
            .Replace("temperature: 0.8", "temperature: warm", StringComparison.Ordinal)
            .Replace("batch_size: 32", "batch_size: 0", StringComparison.Ordinal)
            .Replace("negative_gaps: flip", "negative_gaps: ignore", StringComparison.Ordinal)
            .Replace("beta: 15", "beta: -1", StringComparison.Ordinal);

        var ex = Fails(yaml);

        Assert.Contains("ingest.temperature: 'warm' is not valid; expected a number.", ex.Problems);
        Assert.Contains(ex.Problems, p => p.StartsWith("ranking.reward.batch_size (value 0):", StringComparison.Ordinal) && p.Contains("between 1 and 4096", StringComparison.Ordinal));
        Assert.Contains("split.negative_gaps: 'ignore' is not valid; expected one of difficult, drop, flip.", ex.Problems);
        Assert.Contains(ex.Problems, p => p.StartsWith("training.dpo.objective.beta (value -1):", StringComparison.Ordinal));
        Assert.Equal(4, ex.Problems.Count);
    }

    [Theory]
    [InlineData("ingest.temperature=9", "ingest.temperature (value 9): must be between 0 and 5.")]
    [InlineData("ingest.stop_strings=[\"\"]", "ingest.stop_strings (value ['']): stop strings must not be empty.")]
    [InlineData("ranking.judge=human", "ranking.judge: 'human' is not valid; expected one of reward, llm")]
    [InlineData("ranking.reward.max_tokens_per_batch=512", "ranking.reward.max_tokens_per_batch (value 512): MaxTokensPerBatch (512) must be at least MaxLength (1024) so one sequence fits a batch.")]
    [InlineData("split.quantile=1.2", "split.quantile (value 1.2): must be between 0 and 1.")]
    [InlineData("training.dpo.max_prompt_length=2048", "training.dpo.max_prompt_length (value 2048): max_prompt_length (2048) must be less than max_length (1024).")]
    [InlineData("training.dpo.objective.loss_type=dpo++", "training.dpo.objective.loss_type (value dpo++): loss_type 'dpo++' is not known; expected one of sigmoid, ")]
    [InlineData("training.ppo.gamma=1.4", "training.ppo.gamma (value 1.4): must be between 0 and 1.")]
    [InlineData("training.plan=sft", "training.plan: 'sft' is not valid; expected one of mpo, dpo, ppo, none")]
    [InlineData("evaluation.samples_per_prompt=0", "evaluation.samples_per_prompt (value 0): must be between 1 and 64.")]
    [InlineData("triggers.blob.location=/srv/incoming", "triggers.blob.container (value prompts-in): set exactly one of container (with prefix) or location")]
    [InlineData("inputs.prompts=", "inputs.prompts: is required: a Parquet or JSONL file of prompts.")]
    public void Load_BadValueInAnySection_NamesTheKeyTheValueAndWhatWasExpected(string assignment, string problem)
    {
        var ex = Fails(Valid, [assignment]);

        Assert.StartsWith(problem, Assert.Single(ex.Problems), StringComparison.Ordinal);
    }

    [Fact]
    public void Load_MissingModelFolderAndPrompts_NameTheKeyAndTheResolvedPath()
    {
        var ex = Fails(Valid.Replace("policy: policy", "policy: no-such-model", StringComparison.Ordinal).Replace("prompts: prompts.jsonl", "prompts: missing.jsonl", StringComparison.Ordinal));

        Assert.Contains(ex.Problems, p => p.StartsWith($"models.policy ('no-such-model' → {Path.Combine(_dir, "no-such-model")}): not found; expected a Hugging Face model folder", StringComparison.Ordinal));
        Assert.Contains(ex.Problems, p => p.StartsWith("inputs.prompts ('missing.jsonl'", StringComparison.Ordinal));
    }

    [Fact]
    public void Load_SecretInFile_IsRefusedAndNeverBound()
    {
        string yaml = Valid + "\n" + """
            storage_credentials:
              connection_string: DefaultEndpointsProtocol=https;AccountKey=abc
            """;
        var withJudge = Valid.Replace("judge: reward", "judge: llm\n  llm:\n    endpoint: http://127.0.0.1:9/v1\n    model: m\n    api_key: sk-123", StringComparison.Ordinal);

        Assert.Contains("storage_credentials: unknown key", Fails(yaml).Message, StringComparison.Ordinal);
        var ex = Fails(withJudge);
        Assert.Contains("ranking.llm.api_key: secrets are never read from pipeline files", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("sk-123", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_JudgeTemplateWithUnknownPlaceholder_NamesTheKeyAndThePlaceholder()
    {
        var yaml = Valid.Replace("judge: reward", "judge: llm\n  llm:\n    endpoint: http://127.0.0.1:9/v1\n    model: m\n    prompt_template: \"{prompt} {response_a} {response_b} {answer}\"", StringComparison.Ordinal);

        var ex = Fails(yaml);

        Assert.Contains(ex.Problems, p => p.StartsWith("ranking.llm.prompt_template", StringComparison.Ordinal) && p.Contains("unknown placeholder {answer}", StringComparison.Ordinal));
    }

    private const string AccountKey = "bXktYWNjb3VudC1rZXktMDEyMzQ1Njc4OWFiY2RlZg==";
    private const string ConnectionString = $"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={AccountKey};EndpointSuffix=core.windows.net";

    [Fact]
    public void Load_SetStorageToConnectionString_NamesStorageAndNeverTheKey()
    {
        var ex = Fails(Valid, [$"storage={ConnectionString}"]);

        var problem = Assert.Single(ex.Problems);
        Assert.StartsWith("storage: holds an Azure connection string", problem, StringComparison.Ordinal);
        Assert.Contains("PREFPIPE_BLOB_CONNECTION_STRING", problem, StringComparison.Ordinal);
        Assert.DoesNotContain(AccountKey, ex.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Load_SasQueryInAnotherKey_IsRefused()
    {
        var ex = Fails(Valid.Replace("prompts: prompts.jsonl", "prompts: https://acct.blob.core.windows.net/data/prompts.jsonl?sv=2024-11-04&sp=r&sig=c2lnbmF0dXJlLXZhbHVl", StringComparison.Ordinal));

        Assert.Contains(ex.Problems, p => p.StartsWith("inputs.prompts: holds a shared access signature", StringComparison.Ordinal));
        Assert.DoesNotContain("c2lnbmF0dXJlLXZhbHVl", ex.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Load_VariableExpandingToConnectionString_IsRefused()
    {
        var ex = Fails("storage: ${PP_STORE}\n" + Valid, env: name => name == "PP_STORE" ? ConnectionString : null);

        Assert.Contains(ex.Problems, p => p.StartsWith("storage: holds an Azure connection string", StringComparison.Ordinal));
        Assert.DoesNotContain(AccountKey, ex.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Load_SecretAlongsideOtherProblems_ReportsAllWithoutEchoingIt()
    {
        var ex = Fails(Valid.Replace("judge: reward", $"judge: llm\n  llm:\n    endpoint: \"not a url {ConnectionString}\"\n    model: m", StringComparison.Ordinal)
            .Replace("temperature: 0.8", "temperature: warm", StringComparison.Ordinal));

        Assert.Contains(ex.Problems, p => p.StartsWith("ranking.llm.endpoint: holds an Azure connection string", StringComparison.Ordinal));
        Assert.Contains("ingest.temperature: 'warm' is not valid; expected a number.", ex.Problems);
        Assert.DoesNotContain(AccountKey, ex.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Load_EnvironmentVariables_SubstituteWithDefaultsAndFailWhenMissing()
    {
        string yaml = Valid.Replace("candidates_per_prompt: 6", "candidates_per_prompt: ${PP_K}", StringComparison.Ordinal)
                           .Replace("threshold: 0.75", "threshold: ${PP_TAU:-0.5}", StringComparison.Ordinal);

        var p = PipelineLoader.Load(Write(yaml), environment: name => name == "PP_K" ? "3" : null);
        Assert.Equal(3, p.Definition.Ingest.CandidatesPerPrompt);
        Assert.Equal(0.5, p.Definition.Split.Threshold);

        var ex = Fails(yaml);
        Assert.Contains("ingest.candidates_per_prompt: environment variable PP_K is not set", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_SetOverrides_ReplaceValuesAndCreateSections()
    {
        var p = PipelineLoader.Load(Write(Valid), ["ingest.candidates_per_prompt=8", "evaluation.samples_per_prompt=2", "ingest.stop_strings=[a, b]"], _ => null);

        Assert.Equal(8, p.Definition.Ingest.CandidatesPerPrompt);
        Assert.Equal(2, p.Definition.Evaluation.SamplesPerPrompt);
        Assert.Equal(["a", "b"], p.Definition.Ingest.StopStrings);
        Assert.Contains("candidates_per_prompt: 8", p.CanonicalYaml, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_BadOverrideAndBadCron_AreReported()
    {
        Assert.Contains("expected key.path=value", Fails(Valid, ["ingest"]).Message, StringComparison.Ordinal);
        Assert.Contains("triggers.schedule ('every day'): not a cron expression", Fails(Valid.Replace("\"0 3 * * *\"", "every day", StringComparison.Ordinal)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_NotYaml_GivesLineAndColumn()
    {
        var ex = Fails("name: demo\ninputs: [unclosed\n");

        Assert.Contains("line", ex.Message, StringComparison.Ordinal);
        Assert.Contains("not valid YAML", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("MaxNewTokens", "max_new_tokens")]
    [InlineData("TopP", "top_p")]
    [InlineData("LrSchedulerType", "lr_scheduler_type")]
    [InlineData("PerDeviceTrainBatchSize", "per_device_train_batch_size")]
    public void SnakeCase_MatchesTrlNames(string name, string expected) => Assert.Equal(expected, YamlBinder.SnakeCase(name));
}
