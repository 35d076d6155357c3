Console.Error.WriteLine("xld: not yet"); return 1;
