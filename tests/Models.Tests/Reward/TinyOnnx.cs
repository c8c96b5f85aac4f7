using System.Text;

namespace PrefPipe.Models.Tests.Reward;

/// <summary>
/// Writes tiny ONNX models by hand-encoding the protobuf (onnx.proto field numbers), so input/output variants of an
/// exported reward model can be tested without Python. Opset 11 (ReduceSum and Unsqueeze take axes as attributes).
/// </summary>
internal static class TinyOnnx
{
    public const int TFloat = 1, TInt32 = 6, TInt64 = 7, TFloat16 = 10, TDouble = 11;

    /// <summary>A graph value: name, element type and dims (a number is fixed, a string a symbolic dim_param).</summary>
    public sealed record Value(string Name, int ElemType, params object[] Dims);

    /// <summary>A node: op, inputs, outputs and int / int-list attributes.</summary>
    public sealed record Node(string Op, string[] Inputs, string[] Outputs, params (string Name, object Value)[] Attributes);

    /// <summary>A float initializer.</summary>
    public sealed record Initializer(string Name, long[] Dims, float[] Data);

    public static string Write(IEnumerable<Value> inputs, IEnumerable<Node> nodes, IEnumerable<Value> outputs, IEnumerable<Initializer>? initializers = null)
    {
        var graph = new Pb();
        int n = 0;
        foreach (var node in nodes)
        {
            var p = new Pb();
            foreach (var i in node.Inputs) p.String(1, i);
            foreach (var o in node.Outputs) p.String(2, o);
            p.String(3, $"n{n++}");
            p.String(4, node.Op);
            foreach (var (name, value) in node.Attributes)
            {
                var a = new Pb();
                a.String(1, name);
                if (value is long[] ints)
                {
                    foreach (long x in ints) a.Varint(8, (ulong)x);
                    a.Varint(20, 7); // INTS
                }
                else
                {
                    a.Varint(3, (ulong)Convert.ToInt64(value));
                    a.Varint(20, 2); // INT
                }
                p.Message(5, a);
            }
            graph.Message(1, p);
        }
        graph.String(2, "tiny");
        foreach (var init in initializers ?? [])
        {
            var t = new Pb();
            foreach (long d in init.Dims) t.Varint(1, (ulong)d);
            t.Varint(2, TFloat);
            t.String(8, init.Name);
            t.Bytes(9, init.Data.SelectMany(BitConverter.GetBytes).ToArray()); // raw_data, little-endian
            graph.Message(5, t);
        }
        foreach (var v in inputs) graph.Message(11, ValueInfo(v));
        foreach (var v in outputs) graph.Message(12, ValueInfo(v));

        var model = new Pb();
        model.Varint(1, 7); // ir_version
        model.String(2, "prefpipe-tests");
        model.Message(7, graph);
        var opset = new Pb();
        opset.String(1, "");
        opset.Varint(2, 11);
        model.Message(8, opset);

        string dir = Directory.CreateTempSubdirectory("prefpipe-onnx-").FullName;
        File.WriteAllBytes(Path.Combine(dir, "model.onnx"), model.ToArray());
        return dir;
    }

    private static Pb ValueInfo(Value v)
    {
        var shape = new Pb();
        foreach (var d in v.Dims)
        {
            var dim = new Pb();
            if (d is string param) dim.String(2, param);
            else dim.Varint(1, (ulong)Convert.ToInt64(d));
            shape.Message(1, dim);
        }
        var tensor = new Pb();
        tensor.Varint(1, (ulong)v.ElemType);
        tensor.Message(2, shape);
        var type = new Pb();
        type.Message(1, tensor);
        var info = new Pb();
        info.String(1, v.Name);
        info.Message(2, type);
        return info;
    }

    private sealed class Pb
    {
        private readonly List<byte> _bytes = [];

        public byte[] ToArray() => [.. _bytes];

        private void Raw(ulong v)
        {
            while (v >= 0x80) { _bytes.Add((byte)(v | 0x80)); v >>= 7; }
            _bytes.Add((byte)v);
        }

        public void Varint(int field, ulong v) { Raw((ulong)field << 3); Raw(v); }

        public void Bytes(int field, byte[] data) { Raw(((ulong)field << 3) | 2); Raw((ulong)data.Length); _bytes.AddRange(data); }

        public void String(int field, string s) => Bytes(field, Encoding.UTF8.GetBytes(s));

        public void Message(int field, Pb m) => Bytes(field, m.ToArray());
    }
}
