using Microsoft.Extensions.Options;
using PrefPipe.Host.Commands;
using PrefPipe.Ingest;
using PrefPipe.Splitter;

namespace PrefPipe.Host.Tests.Commands;

/// <summary>
/// Errors through the CLI entry: one line naming the file, key or value, the exit code from the one mapping
/// (<see cref="CliErrors"/>), never a stack trace.
/// </summary>
public sealed class CliErrorsTests
{
    private static readonly string Demo = Path.Combine(AppContext.BaseDirectory, "fixtures", "demo");
    private static readonly string TinyLlama = Path.Combine(AppContext.BaseDirectory, "fixtures", "tiny-llama");

    private static Task<(int Exit, string Error, string Output)> Invoke(params string[] args) => SmallPipeline.InvokeAsync(args);

    private static int LengthOf(string? text) => text!.Length;

    private static void AssertNoStackTrace(string text) => Assert.DoesNotMatch(@"\n\s+at \S+\(", text);

    private static string Folder() => Directory.CreateTempSubdirectory("prefpipe-errors-").FullName;

    private static string Pipeline(string dir, string prompts, string? storage = null) => SmallPipeline.Write(dir, prompts, "errors", storage);

    private static string Prompts(string dir, params string[] lines)
    {
        string file = Path.Combine(dir, "prompts.jsonl");
        File.WriteAllLines(file, lines);
        return file;
    }

    [Theory]
    [InlineData("storage: [a, b")]
    [InlineData("storage: {a: b")]
    public async Task Run_YamlWithUnclosedBracketFollowedByMoreLines_ReportsFileAndLineWithoutStackTrace(string line)
    {
        string dir = Folder();
        string file = Path.Combine(dir, "bad.yaml");
        File.WriteAllText(file, $"name: x\n{line}\ninputs:\n  prompts: p.jsonl\nmodels:\n  policy: a\n");

        var (exit, error, _) = await Invoke("run", file);

        Assert.Equal(Cli.ExitCodes.Usage, exit);
        Assert.Contains(file, error, StringComparison.Ordinal);
        Assert.Contains("not valid YAML", error, StringComparison.Ordinal);
        Assert.Matches(@"line \d+, column \d+", error);
        AssertNoStackTrace(error);
    }

    [Fact]
    public async Task Runs_StorageIsAFile_SaysSoNamingThePath()
    {
        string file = Path.Combine(Folder(), "not-a-folder");
        File.WriteAllText(file, "x");

        var (exit, error, _) = await Invoke("runs", "--storage", file);

        Assert.Equal(Cli.ExitCodes.Usage, exit);
        Assert.Contains($"storage {file} is a file", error, StringComparison.Ordinal);
        AssertNoStackTrace(error);
    }

    [Fact]
    public async Task Status_StorageUnderAFile_NamesTheFile()
    {
        string file = Path.Combine(Folder(), "not-a-folder");
        File.WriteAllText(file, "x");

        var (exit, error, _) = await Invoke("status", "--storage", Path.Combine(file, "runs"));

        Assert.Equal(Cli.ExitCodes.Usage, exit);
        Assert.Contains($"lies under {file}, which is a file", error, StringComparison.Ordinal);
        AssertNoStackTrace(error);
    }

    [Fact]
    public async Task Status_UnreachableBlobStorage_SaysUnreachableWithoutStackTrace()
    {
        // Nothing listens on port 1; a SAS URL needs no credentials from the environment.
        var (exit, error, _) = await Invoke("status", "--storage", "http://127.0.0.1:1/devstoreaccount1/runs?sv=2023-01-03&sp=rl&sig=abc");

        Assert.Equal(Cli.ExitCodes.Failed, exit);
        Assert.Contains("unreachable", error, StringComparison.Ordinal);
        Assert.Contains("127.0.0.1:1", error, StringComparison.Ordinal);
        AssertNoStackTrace(error);
    }

    [Theory]
    [InlineData("generate", "--prompt-ids", "1,999999,3", "token id 999999 is outside the vocabulary")]
    [InlineData("generate", "--prompt-ids", "1,-2,3", "token id '-2'")]
    [InlineData("logprobs", "--ids", "1,999999,3", "token id 999999 is outside the vocabulary")]
    [InlineData("logprobs", "--ids", "-1,2", "token id '-1'")]
    public async Task Model_OutOfVocabularyOrNegativeIds_ClearErrorExit2(string command, string option, string ids, string expected)
    {
        var (exit, error, _) = await Invoke("model", command, "--model", TinyLlama, option, ids);

        Assert.Equal(Cli.ExitCodes.Usage, exit);
        Assert.Contains(expected, error, StringComparison.Ordinal);
        AssertNoStackTrace(error);
    }

    [Theory]
    [InlineData("--max-new-tokens", "-3", "MaxNewTokens")]
    [InlineData("--temperature", "NaN", "Temperature")]
    [InlineData("--top-p", "1.5", "TopP")]
    public async Task ModelGenerate_InvalidSamplingOption_ClearErrorExit2(string option, string value, string field)
    {
        var (exit, error, _) = await Invoke("model", "generate", "--model", TinyLlama, "--prompt-ids", "1,2", option, value);

        Assert.Equal(Cli.ExitCodes.Usage, exit);
        Assert.Contains(field, error, StringComparison.Ordinal);
        AssertNoStackTrace(error);
    }

    [Theory]
    // The error names the flag that set the option and its value (ingest's options are validated as a pipeline file's
    // ingest: section, each failure reported under its flag).
    [InlineData("--max-new-tokens", "-3", "--max-new-tokens (value -3)")]
    [InlineData("--temperature", "NaN", "--temperature (value NaN)")]
    [InlineData("--top-p", "1.5", "--top-p (value 1.5)")]
    [InlineData("--max-batch-rows", "-1", "--max-batch-rows (value -1)")]
    public async Task Ingest_InvalidSamplingOption_ClearErrorExit2(string option, string value, string field)
    {
        string dir = Folder();
        var (exit, error, _) = await Invoke("ingest", "--prompts", Prompts(dir, "{\"prompt\": \"hi\"}"), "--model", Path.Combine(Demo, "policy"),
            "--output", Path.Combine(dir, "out"), option, value);

        Assert.Equal(Cli.ExitCodes.Usage, exit);
        Assert.Contains(field, error, StringComparison.Ordinal);
        AssertNoStackTrace(error);
    }

    [Fact]
    public async Task Rank_JudgeEndpointNotAUrl_ParseErrorExit2NamingTheFlag()
    {
        var (exit, error, _) = await Invoke("rank", "--candidates", "c.parquet", "--reward-model", "r", "--output", "o",
            "--judge", "llm", "--judge-endpoint", "foo/bar", "--judge-model", "m");

        Assert.Equal(Cli.ExitCodes.Usage, exit);
        Assert.Contains("--judge-endpoint foo/bar: expected an absolute http(s) URL", error, StringComparison.Ordinal);
        AssertNoStackTrace(error);
    }

    [Theory]
    [InlineData("ppo", "--kl-coef", "NaN", "KlCoef")]
    [InlineData("dpo", "--learning-rate", "NaN", "LearningRate")]
    public async Task Train_NaNOption_ClearErrorExit2(string command, string option, string value, string field)
    {
        string dir = Folder();
        string[] args = command == "ppo"
            ? ["train", "ppo", "--prompts", Prompts(dir, "{\"prompt\": \"hi\"}"), "--model", TinyLlama, "--reward-model", Path.Combine(Demo, "reward"), "--output", Path.Combine(dir, "out"), option, value]
            : ["train", "dpo", "--data", Path.Combine(dir, "none.parquet"), "--model", TinyLlama, "--output", Path.Combine(dir, "out"), option, value];

        var (exit, error, _) = await Invoke(args);

        Assert.Equal(Cli.ExitCodes.Usage, exit);
        Assert.Contains(field, error, StringComparison.Ordinal);
        AssertNoStackTrace(error);
    }

    [Theory]
    [InlineData("ingest.temperature=NaN", "ingest.temperature")]
    [InlineData("evaluation.temperature=NaN", "evaluation.temperature")]
    [InlineData("training.ppo.kl_coef=NaN", "training.ppo.kl_coef")]
    [InlineData("training.dpo.objective.mipo_constant=NaN", "training.dpo.objective.mipo_constant")]
    [InlineData("training.dpo.objective.bcr_budget=NaN", "training.dpo.objective.bcr_budget")]
    public async Task Run_NaNInPipeline_FailsNamingTheKey(string assignment, string key)
    {
        string dir = Folder();

        var (exit, error, _) = await Invoke("run", Pipeline(dir, Prompts(dir, "{\"prompt\": \"hi\"}")), "--set", assignment);

        Assert.Equal(Cli.ExitCodes.Usage, exit);
        Assert.Contains(key, error, StringComparison.Ordinal);
        AssertNoStackTrace(error);
    }

    [Fact]
    public async Task Run_FromAfterUntil_RefusedBeforeAnyWork()
    {
        string dir = Folder();
        string pipeline = Pipeline(dir, Prompts(dir, "{\"prompt\": \"hi\"}"));

        var (exit, error, _) = await Invoke("run", pipeline, "--run-id", "r1", "--from", "split", "--until", "ingest");

        Assert.Equal(Cli.ExitCodes.Usage, exit);
        Assert.Contains("--from split comes after --until ingest", error, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(dir, "runs", "r1")), "no run may be recorded");
    }

    [Fact]
    public async Task Status_InvalidRunId_MessageWithoutParameterName()
    {
        var (exit, error, _) = await Invoke("status", "--storage", Folder(), "--run", "bad id!");

        Assert.Equal(Cli.ExitCodes.Usage, exit);
        Assert.Contains("run id 'bad id!' is not valid", error, StringComparison.Ordinal);
        Assert.DoesNotContain("(Parameter", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Inspect_ADirectory_SaysItIsADirectory()
    {
        string dir = Folder();

        var (exit, error, _) = await Invoke("inspect", dir);

        Assert.Equal(Cli.ExitCodes.Usage, exit);
        Assert.Contains($"{dir} is a directory, expected a file", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Ingest_PromptsIsADirectory_SaysItIsADirectory()
    {
        string dir = Folder();

        var (exit, error, _) = await Invoke("ingest", "--prompts", dir, "--model", Path.Combine(Demo, "policy"), "--output", Path.Combine(dir, "out"));

        Assert.Equal(Cli.ExitCodes.Usage, exit);
        Assert.Contains($"{dir} is a directory, expected a file", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Run_PipelinePromptsIsADirectory_SaysItIsADirectory()
    {
        string dir = Folder();
        string prompts = Directory.CreateDirectory(Path.Combine(dir, "prompts")).FullName;

        var (exit, error, _) = await Invoke("run", Pipeline(dir, prompts));

        Assert.Equal(Cli.ExitCodes.Usage, exit);
        Assert.Contains($"inputs.prompts ('{prompts}' → {prompts}): is a directory, expected a file", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Run_StorageOption_OverridesThePipelinesStorage()
    {
        string dir = Folder();
        string other = Path.Combine(Folder(), "elsewhere");
        string pipeline = Pipeline(dir, Path.Combine(AppContext.BaseDirectory, "fixtures", "serve", "prompts-a.jsonl"));

        var (exit, error, output) = await Invoke("run", pipeline, "--run-id", "s1", "--until", "ingest", "--storage", other);

        Assert.True(exit == 0, $"exit {exit}: {error}{output}");
        Assert.True(File.Exists(Path.Combine(other, "s1", "run.json")), "run.json in the --storage folder");
        Assert.True(File.Exists(Path.Combine(other, "s1", "ingest", "candidates.parquet")));
        Assert.False(Directory.Exists(Path.Combine(dir, "runs", "s1")), "nothing in the pipeline's own storage");
    }

    [Fact]
    public void Report_UnexpectedException_SaysItIsABugWithoutStackTraceExit3()
    {
        // A real bug: the runtime throws it, with a stack trace the report must leave out.
        Exception bug = Assert.Throws<NullReferenceException>(() => LengthOf(null));
        using var error = new StringWriter();

        int exit = CliErrors.Report("split", bug, error);

        Assert.Equal(Cli.ExitCodes.Bug, exit);
        Assert.StartsWith("prefpipe split: NullReferenceException: Object reference not set to an instance of an object.", error.ToString(), StringComparison.Ordinal);
        Assert.Contains("this is a bug", error.ToString(), StringComparison.Ordinal);
        AssertNoStackTrace(error.ToString());
    }

    [Theory]
    [InlineData(typeof(InvalidDataException), 2)]
    [InlineData(typeof(FileNotFoundException), 2)]
    [InlineData(typeof(System.ComponentModel.DataAnnotations.ValidationException), 2)]
    [InlineData(typeof(IOException), 1)]
    [InlineData(typeof(InvalidOperationException), 1)]
    [InlineData(typeof(OperationCanceledException), 1)]
    [InlineData(typeof(IndexOutOfRangeException), 3)]
    public void ExitCodeOf_ExceptionType_OneCodeForEveryCommand(Type type, int expected)
    {
        var e = (Exception)Activator.CreateInstance(type, "message")!;

        Assert.Equal(expected, CliErrors.ExitCodeOf(e));
    }

    [Fact]
    public void Report_OptionsRefusedWhenAHostStarts_IsAUsageErrorListingEveryFailure()
    {
        // ValidateOnStart throws one exception per options type, in an aggregate when more than one fails.
        var e = new AggregateException(
            new OptionsValidationException("", typeof(IngestOptions), ["Temperature: The field IngestOptions.Temperature must be between 0 and 5."]),
            new OptionsValidationException("", typeof(SplitterOptions), ["Quantile: The field SplitterOptions.Quantile must be between 0 and 1."]));
        var error = new StringWriter();

        int code = CliErrors.Report("serve", e, error);

        Assert.Equal(2, code);
        Assert.Contains("IngestOptions.Temperature must be between 0 and 5", error.ToString(), StringComparison.Ordinal);
        Assert.Contains("SplitterOptions.Quantile must be between 0 and 1", error.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("bug", error.ToString(), StringComparison.Ordinal);
    }
}
