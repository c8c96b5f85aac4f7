using System.Reflection;
using System.Text.RegularExpressions;
using Parquet;
using Parquet.Schema;
using PrefPipe.Artifacts.Inputs;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;

namespace PrefPipe.Artifacts.Tests.Rows;

/// <summary>
/// Each artifact row type's Parquet columns against the snapshot of its SchemaVersion (Rows/snapshots/ROW.vN.txt, one
/// "name: type" line per column). Files already written keep the columns of their version, and the run manifest records
/// that version: changing the columns without a new version would make old and new files look alike.
/// </summary>
public sealed class SchemaSnapshotTests
{
    private const string SnapshotFolder = "tests/Artifacts.Tests/Rows/snapshots";
    private static readonly string Snapshots = Path.Combine(AppContext.BaseDirectory, "Rows", "snapshots");

    private readonly LocalArtifactStore _store = new(Directory.CreateTempSubdirectory("prefpipe-schema-").FullName);

    [Fact]
    public Task PromptRow_Schema_MatchesSnapshotOfItsSchemaVersion() => Check<PromptRow>(PromptRow.SchemaVersion);

    [Fact]
    public Task CandidateRow_Schema_MatchesSnapshotOfItsSchemaVersion() => Check<CandidateRow>(CandidateRow.SchemaVersion);

    [Fact]
    public Task RejectRow_Schema_MatchesSnapshotOfItsSchemaVersion() => Check<RejectRow>(RejectRow.SchemaVersion);

    [Fact]
    public Task ScoredCandidateRow_Schema_MatchesSnapshotOfItsSchemaVersion() => Check<ScoredCandidateRow>(ScoredCandidateRow.SchemaVersion);

    [Fact]
    public Task ComparisonRow_Schema_MatchesSnapshotOfItsSchemaVersion() => Check<ComparisonRow>(ComparisonRow.SchemaVersion);

    [Fact]
    public Task PreferenceRow_Schema_MatchesSnapshotOfItsSchemaVersion() => Check<PreferenceRow>(PreferenceRow.SchemaVersion);

    [Fact]
    public Task ConversationalPreferenceRow_Schema_MatchesSnapshotOfItsSchemaVersion() => Check<ConversationalPreferenceRow>(ConversationalPreferenceRow.SchemaVersion);

    [Fact]
    public Task ReferenceLogProbRow_Schema_MatchesSnapshotOfItsSchemaVersion() => Check<ReferenceLogProbRow>(ReferenceLogProbRow.SchemaVersion);

    [Fact]
    public Task MetricRow_Schema_MatchesSnapshotOfItsSchemaVersion() => Check<MetricRow>(MetricRow.SchemaVersion);

    [Fact]
    public Task EvaluationRow_Schema_MatchesSnapshotOfItsSchemaVersion() => Check<EvaluationRow>(EvaluationRow.SchemaVersion);

    [Fact]
    public void RowTypes_EachVersionedRowType_HasASnapshotTest()
    {
        var versioned = typeof(PromptRow).Assembly.GetExportedTypes()
            .Where(t => t.Namespace == typeof(PromptRow).Namespace && t.GetField("SchemaVersion", BindingFlags.Public | BindingFlags.Static) is { IsLiteral: true })
            .Select(t => t.Name);
        var tested = typeof(SchemaSnapshotTests).GetMethods().Select(m => m.Name).ToHashSet(StringComparer.Ordinal);

        var missing = versioned.Where(n => !tested.Contains($"{n}_Schema_MatchesSnapshotOfItsSchemaVersion")).ToList();

        Assert.True(missing.Count == 0, $"row types without a schema-snapshot test: {string.Join(", ", missing)}. Add a [Fact] "
            + $"TYPE_Schema_MatchesSnapshotOfItsSchemaVersion() => Check<TYPE>(TYPE.SchemaVersion) to {nameof(SchemaSnapshotTests)} and the snapshot it asks for.");
    }

    /// <summary>Writes one row of <typeparamref name="T"/>, reads the file's schema back and compares it to the snapshot of <paramref name="schemaVersion"/>.</summary>
    private async Task Check<T>(int schemaVersion) where T : class, new()
    {
        string name = typeof(T).Name;
        var info = await ParquetArtifacts.WriteAsync(_store, $"schema/{name}.parquet", [new T()]);
        string actual;
        await using (var stream = await _store.OpenReadAsync(info.Path))
        await using (var reader = await ParquetReader.CreateAsync(stream))
            actual = string.Join('\n', reader.Schema.Fields.Select(f => $"{f.Name}: {Describe(f)}"));

        var versions = Directory.Exists(Snapshots)
            ? Directory.EnumerateFiles(Snapshots, $"{name}.v*.txt")
                .Select(f => Regex.Match(Path.GetFileName(f), $@"^{Regex.Escape(name)}\.v(\d+)\.txt$", RegexOptions.CultureInvariant))
                .Where(m => m.Success).Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).Order().ToList()
            : [];
        int newest = versions.Count > 0 ? versions[^1] : 0;
        string snapshot = $"{SnapshotFolder}/{name}.v{schemaVersion}.txt";

        Assert.True(newest <= schemaVersion,
            $"{SnapshotFolder}/{name}.v{newest}.txt exists but {name}.SchemaVersion is {schemaVersion}: the snapshot's version must be the row type's. "
            + $"Set {name}.SchemaVersion to {newest} (and say what changed in its comment).");
        Assert.True(newest == schemaVersion,
            $"{name}.SchemaVersion is {schemaVersion} but there is no {snapshot}. Add it with exactly these lines (the columns "
            + $"version {schemaVersion} writes), and keep the older versions' snapshots:\n{actual}");

        string expected = File.ReadAllText(Path.Combine(Snapshots, $"{name}.v{schemaVersion}.txt")).ReplaceLineEndings("\n").TrimEnd('\n');
        Assert.True(expected == actual,
            $"{name}'s Parquet columns changed but {name}.SchemaVersion is still {schemaVersion}, so files with the new columns would "
            + $"claim the old version. Bump {name}.SchemaVersion to {schemaVersion + 1} (say what changed in its comment), add "
            + $"{SnapshotFolder}/{name}.v{schemaVersion + 1}.txt with exactly the 'now' lines, and keep {name}.v{schemaVersion}.txt.\n"
            + $"v{schemaVersion} snapshot:\n{expected}\nnow:\n{actual}");
    }

    // UntypedParquet.TypeName marks data fields that cannot be null; lists and structs get the same mark here, so making
    // one of them required or optional changes the snapshot too.
    private static string Describe(Field field) => field switch
    {
        ListField l => $"list<{Describe(l.Item)}>{NotNull(l)}",
        StructField s => $"struct<{string.Join(", ", s.Fields.Select(f => $"{f.Name}: {Describe(f)}"))}>{NotNull(s)}",
        _ => UntypedParquet.TypeName(field),
    };

    private static string NotNull(Field field) => field.IsNullable ? "" : " not null";
}
