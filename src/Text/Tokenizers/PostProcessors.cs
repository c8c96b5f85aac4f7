namespace PrefPipe.Text.Tokenizers;

/// <summary>A tokenizer.json post-processor, applied to a single sequence when special tokens are requested.</summary>
internal abstract class PostProcessor
{
    public abstract List<int> Process(List<int> ids);

    public static PostProcessor? FromJson(JsonCursor? node)
    {
        if (node is null) return null;
        var n = node.Value;
        string type = n.TypeName();
        return type switch
        {
            "Sequence" => new SequencePostProcessor(n.Required("processors").Items().Select(x => FromJson(x)!).ToArray()),
            "ByteLevel" => new NoOpPostProcessor(),
            "TemplateProcessing" => TemplatePostProcessor.FromJson(n),
            "RobertaProcessing" or "BertProcessing" => new WrapPostProcessor(ReadPair(n.Required("cls")), ReadPair(n.Required("sep"))),
            _ => throw new NotSupportedException(
                $"{n.File}: '{n.Path}.type' is \"{type}\"; supported post-processors: Sequence, ByteLevel, TemplateProcessing, " +
                "RobertaProcessing, BertProcessing."),
        };
    }

    private static int ReadPair(JsonCursor n)
    {
        var items = n.Items().ToArray();
        if (items.Length != 2) throw n.Error("must be [token, id]");
        return items[1].Int();
    }
}

internal sealed class SequencePostProcessor(PostProcessor[] processors) : PostProcessor
{
    public override List<int> Process(List<int> ids)
    {
        foreach (var p in processors) ids = p.Process(ids);
        return ids;
    }
}

/// <summary>HF <c>ByteLevel</c> post-processing only trims offsets; ids are unchanged.</summary>
internal sealed class NoOpPostProcessor : PostProcessor
{
    public override List<int> Process(List<int> ids) => ids;
}

/// <summary>RoBERTa/BERT: <c>cls</c> + ids + <c>sep</c>.</summary>
internal sealed class WrapPostProcessor(int clsId, int sepId) : PostProcessor
{
    public override List<int> Process(List<int> ids)
    {
        var result = new List<int>(ids.Count + 2) { clsId };
        result.AddRange(ids);
        result.Add(sepId);
        return result;
    }
}

/// <summary>HF <c>TemplateProcessing</c>, its <c>single</c> template (e.g. <c>&lt;s&gt; $A</c>).</summary>
internal sealed class TemplatePostProcessor : PostProcessor
{
    // null = the sequence itself; otherwise the ids of a special token.
    private readonly List<int[]?> _template;

    private TemplatePostProcessor(List<int[]?> template) => _template = template;

    public static TemplatePostProcessor FromJson(JsonCursor n)
    {
        var specials = new Dictionary<string, int[]>(StringComparer.Ordinal);
        if (n.Optional("special_tokens") is { } sp)
            foreach (var (key, value) in sp.Properties())
                specials[key] = value.Required("ids").Items().Select(i => i.Int()).ToArray();

        var template = new List<int[]?>();
        foreach (var item in n.Required("single").Items())
        {
            if (item.Optional("Sequence") is { } seq)
            {
                string id = seq.Required("id").String();
                if (id != "A") throw seq.Required("id").Error("must be \"A\" in the single-sequence template");
                template.Add(null);
            }
            else if (item.Optional("SpecialToken") is { } st)
            {
                var idNode = st.Required("id");
                string id = idNode.String();
                if (!specials.TryGetValue(id, out var ids))
                    throw idNode.Error($"names a special token missing from '{n.Path}.special_tokens'");
                template.Add(ids);
            }
            else
            {
                throw item.Error("must be {\"Sequence\": …} or {\"SpecialToken\": …}");
            }
        }
        return new TemplatePostProcessor(template);
    }

    public override List<int> Process(List<int> ids)
    {
        var result = new List<int>(ids.Count + _template.Count);
        foreach (var part in _template)
        {
            if (part is null) result.AddRange(ids);
            else result.AddRange(part);
        }
        return result;
    }
}
