"""Entry point from a checkout: python main.py fit|validate|test|predict --config configs/....yaml (installed: merge-cli)."""
from dawe_merge.console import main

if __name__ == "__main__":
    main()
