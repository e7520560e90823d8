using JobLog;
using JobLog.Bench;
using JobLog.Bench.Infrastructure;
using JobLog.Bench.Throughput;

if (args.Length > 0 && args[0] == "micro")
{
    // BenchmarkDotNet owns the rest of the command line (--filter, --job, ...).
    BenchmarkDotNet.Running.BenchmarkSwitcher.FromAssembly(typeof(BenchOptions).Assembly).Run(args[1..]);
    return 0;
}

if (args.Length > 0 && args[0] is "help" or "--help" or "-h")
{
    Console.WriteLine(BenchOptions.Usage);
    return 0;
}

BenchOptions options;
try
{
    options = BenchOptions.Parse(args);
}
catch (Exception ex) when (ex is ArgumentException or FormatException)
{
    Console.Error.WriteLine(ex.Message);
    Console.Error.WriteLine(BenchOptions.Usage);
    return 2;
}

var sections = new List<string>();
var rabbit = options.Mode is "throughput" or "all" && options.Transports.Contains(TransportKind.RabbitMq);
var postgres = options.Ledgers.Contains(LedgerProvider.PostgreSql);
var header = $"""
    ## JobLog benchmark ({options.Mode})

    {await Machine.DescribeAsync(rabbit, postgres)}
    - command: `{options.CommandLine}`
    """;
Console.WriteLine(header);
Console.WriteLine();

if (options.Mode is "throughput" or "all")
{
    sections.Add("### Throughput\n\n" + await new ThroughputBench(options).RunAsync());
}

if (options.Mode is "sweep" or "all")
{
    sections.Add("### Sweeper and dashboard query on a big ledger\n\n" + await new JobLog.Bench.Sweep.SweepBench(options).RunAsync());
}

if (options.Mode is "stall" or "all")
{
    sections.Add("### Memory when the database stalls\n\n" + await new JobLog.Bench.Stall.StallBench(options).RunAsync());
}

if (options.Mode is "writer")
{
    sections.Add("### Writer alone\n\n" + await new JobLog.Bench.Writer.WriterBench(options).RunAsync());
}

if (options.Mode is "scale")
{
    sections.Add("### A big ledger: pages, search, overview, sweep and retention\n\n" + await new JobLog.Bench.Scale.ScaleBench(options).RunAsync());
}

if (options.Mode is "requests" or "requestwriter")
{
    sections.Add("### The request and command lists' filters\n\n" + await new JobLog.Bench.Scale.RequestFiltersBench(options).RunAsync());
}

if (options.Mode is "failures")
{
    sections.Add("### Failures: keeping failed messages, bulk retry\n\n" + await new JobLog.Bench.Failures.FailuresBench(options).RunAsync());
}

var report = header + "\n\n" + string.Join("\n", sections);
Console.WriteLine();
Console.WriteLine(report);
if (options.OutFile is { } file)
{
    await File.AppendAllTextAsync(file, report + "\n");
}

return 0;
